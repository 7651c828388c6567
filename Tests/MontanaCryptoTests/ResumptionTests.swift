import XCTest
@testable import MontanaCrypto

/// PROTOCOL.md 5.3 messages: only the holder of `resume_secret` can make a request the responder
/// accepts or an acceptance the initiator believes; refusals are unauthenticated but can only
/// make the initiator start afresh.
final class ResumptionTests: XCTestCase {
    let secret = [UInt8](repeating: 0x5a, count: 32)
    let sessionID = (0..<16).map { UInt8($0) }
    let nonceI = [UInt8](repeating: 0x11, count: 32)
    let nonceR = [UInt8](repeating: 0x22, count: 32)

    func test_requestLayoutAndRoundTrip() throws {
        let bytes = Resumption.request(sessionID: sessionID, resumeSecret: secret, received: 0x0102, nonce: nonceI)
        XCTAssertEqual(bytes.count, Resumption.requestSize)
        XCTAssertEqual(bytes[0], 0x02, "kind resume")
        XCTAssertEqual(Array(bytes[1..<17]), sessionID)
        XCTAssertEqual(Array(bytes[49..<57]), [0x02, 0x01, 0, 0, 0, 0, 0, 0], "rx is u64 LE")
        let request = try Resumption.parseRequest(bytes)
        XCTAssertEqual(request.received, 0x0102)
        XCTAssertTrue(Resumption.verify(request, resumeSecret: secret))
        XCTAssertFalse(Resumption.verify(request, resumeSecret: [UInt8](repeating: 0x5b, count: 32)), "another session's secret")
    }

    func test_everyTamperedByteOfARequestFailsVerification() throws {
        let bytes = Resumption.request(sessionID: sessionID, resumeSecret: secret, received: 77, nonce: nonceI)
        for i in 1..<bytes.count {
            var t = bytes
            t[i] ^= 0x01
            let request = try Resumption.parseRequest(t)
            XCTAssertFalse(Resumption.verify(request, resumeSecret: secret), "flipped byte \(i)")
        }
        XCTAssertThrowsError(try Resumption.parseRequest(Array(bytes.dropLast()))) { XCTAssertEqual($0 as? Resumption.Failure, .wrongSize) }
        var handshake = bytes
        handshake[0] = 0x01
        XCTAssertThrowsError(try Resumption.parseRequest(handshake)) { XCTAssertEqual($0 as? Resumption.Failure, .notAResume) }
    }

    func test_acceptanceIsAuthenticatedAndBoundToTheRequest() throws {
        let request = try Resumption.parseRequest(Resumption.request(sessionID: sessionID, resumeSecret: secret, received: 5, nonce: nonceI))
        let answer = Resumption.accept(request, resumeSecret: secret, received: 1 << 40, nonce: nonceR)
        XCTAssertEqual(answer.count, Resumption.answerSize)
        let read = try Resumption.parseAnswer(answer, to: request, resumeSecret: secret)
        XCTAssertEqual(read, Resumption.Answer(status: .ok, nonce: nonceR, received: 1 << 40))
        for i in 1..<answer.count {
            var t = answer
            t[i] ^= 0x80
            XCTAssertThrowsError(try Resumption.parseAnswer(t, to: request, resumeSecret: secret), "flipped byte \(i)") {
                XCTAssertEqual($0 as? Resumption.Failure, .badMAC)
            }
        }
        // The same answer does not fit another request (a replayed acceptance).
        let other = try Resumption.parseRequest(Resumption.request(sessionID: sessionID, resumeSecret: secret, received: 5,
                                                                   nonce: [UInt8](repeating: 0x33, count: 32)))
        XCTAssertThrowsError(try Resumption.parseAnswer(answer, to: other, resumeSecret: secret))
    }

    func test_refusalsAreReadAsTheyAre() throws {
        let request = try Resumption.parseRequest(Resumption.request(sessionID: sessionID, resumeSecret: secret, received: 0, nonce: nonceI))
        XCTAssertEqual(try Resumption.parseAnswer(Resumption.refuse(.unknownSession), to: request, resumeSecret: secret).status, .unknownSession)
        XCTAssertEqual(try Resumption.parseAnswer(Resumption.refuse(.offsetLost), to: request, resumeSecret: secret).status, .offsetLost)
        var unknown = Resumption.refuse(.offsetLost)
        unknown[0] = 9
        XCTAssertThrowsError(try Resumption.parseAnswer(unknown, to: request, resumeSecret: secret)) {
            XCTAssertEqual($0 as? Resumption.Failure, .unknownStatus(9))
        }
    }

    func test_keysDependOnBothNoncesAndDiffer() {
        let k = Resumption.keys(resumeSecret: secret, initiatorNonce: nonceI, responderNonce: nonceR)
        XCTAssertEqual(k.i2r.count, 32)
        XCTAssertNotEqual(k.i2r, k.r2i)
        XCTAssertEqual(k.i2r, Resumption.keys(resumeSecret: secret, initiatorNonce: nonceI, responderNonce: nonceR).i2r, "deterministic")
        XCTAssertNotEqual(k.i2r, Resumption.keys(resumeSecret: secret, initiatorNonce: nonceI, responderNonce: nonceI).i2r)
        XCTAssertNotEqual(k.i2r, Resumption.keys(resumeSecret: nonceR, initiatorNonce: nonceI, responderNonce: nonceR).i2r)
    }
}
