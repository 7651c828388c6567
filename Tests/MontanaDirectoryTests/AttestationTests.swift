import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class AttestationTests: XCTestCase {
    let now = Fixtures.now
    let w = Fixtures.window

    private func store(_ nodes: [TestNode], limits: DirectoryLimits = .init()) throws -> DirectoryStore {
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, limits: limits, now: now)
        for n in nodes { XCTAssertEqual(s.offerRecord(try n.signedRecord(), now: now), .added) }
        return s
    }

    func test_everyAttestationRejection() throws {
        let a = try TestNode(), b = try TestNode(), stranger = try TestNode()
        let s = try store([a, b])
        XCTAssertEqual(s.offerAttestation(try a.attest(b), now: now), .added)
        XCTAssertEqual(s.offerAttestation([UInt8](repeating: 0, count: 8193), now: now), .rejected(.oversized))
        XCTAssertEqual(s.offerAttestation([0x0a, 0x05], now: now), .rejected(.malformed))
        // "ZZ" written by hand: the encoder does not check, the decoder must.
        let zz = Attestation(subject: b.nodeID.bytes, countryCode: "ZZ", window: w, attester: a.nodeID.bytes, method: .egressGeolocated)
        XCTAssertEqual(s.offerAttestation(try AttestationSigner.sign(zz, with: a.identity).encode(), now: now), .rejected(.country))
        XCTAssertEqual(s.offerAttestation(try stranger.attest(b), now: now), .rejected(.unknownAttester))
        XCTAssertEqual(s.offerAttestation(try a.attest(stranger), now: now), .rejected(.unknownSubject))
        XCTAssertEqual(s.offerAttestation(try a.attest(a), now: now), .rejected(.selfAttestation))
        var flipped = try b.attest(a)
        flipped[flipped.count - 1] ^= 1
        XCTAssertEqual(s.offerAttestation(flipped, now: now), .rejected(.badSignature))
        // Claims to be by a, signed by b.
        let claim = Attestation(subject: b.nodeID.bytes, countryCode: "DE", window: w, attester: a.nodeID.bytes, method: .egressGeolocated)
        XCTAssertEqual(s.offerAttestation(try AttestationSigner.sign(claim, with: b.identity).encode(), now: now), .rejected(.badSignature))
        XCTAssertEqual(s.offerAttestation(try b.attest(a, window: w + 2), now: now), .rejected(.future))
        XCTAssertEqual(s.offerAttestation(try b.attest(a, window: w - 1441), now: now), .rejected(.stale))
        XCTAssertEqual(s.offerAttestation(try b.attest(a, window: w - 1440), now: now), .added, "exactly 24 h old still counts")
        XCTAssertEqual(s.attestationCount, 2)
        XCTAssertEqual(s.rejections[.badSignature], 2)
    }

    func test_attesterWhoseRecordIsNoLongerLiveIsUnknown() throws {
        let a = try TestNode(), b = try TestNode()
        let s = try store([b])
        XCTAssertEqual(s.offerRecord(try a.signedRecord(expiresIn: 60), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try a.attest(b), now: now + 61), .rejected(.unknownAttester))
    }

    func test_newestWindowPerSubjectAndAttesterWins() throws {
        let a = try TestNode(), b = try TestNode()
        let s = try store([a, b])
        XCTAssertEqual(s.offerAttestation(try a.attest(b, window: w - 5), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try a.attest(b, window: w), now: now), .updated)
        XCTAssertEqual(s.offerAttestation(try a.attest(b, window: w - 1), now: now), .unchanged)
        XCTAssertEqual(s.attestationCount, 1)
        XCTAssertEqual(s.member(b.nodeID, now: now)?.corroboration.lastAttestedWindow, w)
    }

    func test_atMostSixteenPerSubjectTheOldestGoes() throws {
        let subject = try TestNode()
        let attesters = try (0..<17).map { _ in try TestNode() }
        let s = try store([subject] + attesters)
        for (i, a) in attesters.enumerated() {
            XCTAssertEqual(s.offerAttestation(try a.attest(subject, window: w - 20 + UInt32(i)), now: now), .added)
        }
        XCTAssertEqual(s.attestationCount, 16)
        let (_, sent) = s.newer(than: [], now: now)
        let windows = try sent.map { try Attestation.decode(SignedEnvelope.decode($0).payload).window }
        XCTAssertEqual(windows.min(), w - 19, "the oldest (w - 20) was dropped")
        // One older than all held is not taken.
        let late = try TestNode()
        XCTAssertEqual(s.offerRecord(try late.signedRecord(), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try late.attest(subject, window: w - 100), now: now), .unchanged)
        XCTAssertEqual(s.attestationCount, 16)
    }

    /// More attesters than room, all in one window: whatever order they arrive in, every store
    /// keeps the same 16 (so digests agree and gossip stops resending the set).
    func test_overflowingAttestationsOfOneWindowKeepTheSameSetInAnyArrivalOrder() throws {
        let subject = try TestNode()
        let attesters = try (0..<20).map { _ in try TestNode() }
        let signed = try attesters.map { try $0.attest(subject, window: w) }
        let forward = try store([subject] + attesters), backward = try store([subject] + attesters)
        for a in signed { _ = forward.offerAttestation(a, now: now) }
        for a in signed.reversed() { _ = backward.offerAttestation(a, now: now) }
        XCTAssertEqual(forward.attestationCount, 16)
        XCTAssertEqual(backward.attestationCount, 16)
        XCTAssertEqual(Set(forward.newer(than: [], now: now).attestations), Set(backward.newer(than: [], now: now).attestations))
        XCTAssertEqual(forward.digest(), backward.digest(), "the two stores' digests agree")
    }

    func test_totalAttestationsAreBoundedDroppingTheOldestWindow() throws {
        let a = try TestNode(), b = try TestNode(), c = try TestNode()
        let s = try store([a, b, c], limits: DirectoryLimits(maxAttestations: 3))
        XCTAssertEqual(s.offerAttestation(try a.attest(b, window: w - 3), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try a.attest(c, window: w - 2), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try b.attest(a, window: w - 1), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try c.attest(a, window: w - 4), now: now), .unchanged, "older than everything held")
        XCTAssertEqual(s.offerAttestation(try c.attest(b, window: w), now: now), .added)
        XCTAssertEqual(s.attestationCount, 3)
        XCTAssertEqual(s.member(b.nodeID, now: now)?.corroboration.lastAttestedWindow, w, "a's (w - 3) about b went, c's stayed")
    }

    func test_attestationsOfAnEvictedOrExpiredNodeGo() throws {
        let a = try TestNode(), b = try TestNode()
        let s = try store([b])
        XCTAssertEqual(s.offerRecord(try a.signedRecord(expiresIn: 120), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try a.attest(b), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try b.attest(a), now: now), .added)
        XCTAssertEqual(s.expire(now: now + 121), 1)
        XCTAssertEqual(s.attestationCount, 0)
    }
}
