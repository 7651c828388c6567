import MontanaCrypto
import MontanaWire
import XCTest

final class PrefaceTests: XCTestCase {
    static let hop = try! KEMKey(seed: [UInt8](repeating: 0x12, count: 32))
    let now: UInt64 = 1_800_000_000
    let alliance = [UInt8](repeating: 0xaa, count: 16)

    func connect(ts: UInt64?, alliance: [UInt8]? = nil) -> Preface.Message {
        .hop(HopMessage(type: .connect, peer: RelayPeer(id: [0x12, 0x20] + [UInt8](repeating: 1, count: 32)),
                        ext: RelayExtension(ts: ts, alliance: alliance, purpose: .session)))
    }

    func test_prefaceIs1632BytesAndTheAnswerIs80() throws {
        let sealed = try Preface.seal(connect(ts: now), to: Self.hop.publicKey)
        XCTAssertEqual(sealed.bytes.count, 1632)
        let (message, keys) = try Preface.open(sealed.bytes, with: Self.hop)
        XCTAssertEqual(message, connect(ts: now))
        let answer = try Preface.sealResponse(.hop(HopMessage(type: .status, status: .ok)), keys: keys)
        XCTAssertEqual(answer.count, 80)
        XCTAssertEqual(try Preface.openResponse(answer, keys: sealed.keys, expecting: .hop), .hop(HopMessage(type: .status, status: .ok)))
    }

    func test_replayedPrefaceIsRejected() throws {
        var gate = PrefaceGate()
        let bytes = try Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes
        XCTAssertNoThrow(try gate.admit(bytes, key: Self.hop, now: now))
        XCTAssertThrowsError(try gate.admit(bytes, key: Self.hop, now: now + 100)) { XCTAssertEqual($0 as? PrefaceError, .replay) }
    }

    func test_timestampOutsideTwoMinutesOrMissingIsRejected() throws {
        var gate = PrefaceGate()
        for (ts, error) in [(now - 121, PrefaceError.staleTimestamp), (now + 121, .staleTimestamp), (nil, .missingTimestamp)] as [(UInt64?, PrefaceError)] {
            XCTAssertThrowsError(try gate.admit(Preface.seal(connect(ts: ts), to: Self.hop.publicKey).bytes, key: Self.hop, now: now)) {
                XCTAssertEqual($0 as? PrefaceError, error)
            }
        }
        XCTAssertNoThrow(try gate.admit(Preface.seal(connect(ts: now - 120), to: Self.hop.publicKey).bytes, key: Self.hop, now: now))
    }

    func test_fullReplayMemoryFailsClosedInsteadOfForgetting() throws {
        var gate = PrefaceGate(capacity: 2)
        XCTAssertNoThrow(try gate.admit(Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes, key: Self.hop, now: now))
        XCTAssertNoThrow(try gate.admit(Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes, key: Self.hop, now: now))
        XCTAssertThrowsError(try gate.admit(Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes, key: Self.hop, now: now + 1)) {
            XCTAssertEqual($0 as? PrefaceError, .replayCacheFull)
        }
        // After 240 s the entries expire and room returns.
        XCTAssertNoThrow(try gate.admit(Preface.seal(connect(ts: now + 241), to: Self.hop.publicKey).bytes, key: Self.hop, now: now + 241))
        XCTAssertEqual(gate.count, 1)
    }

    func test_unknownAllianceIsRejectedWhenAdmissionIsOn() throws {
        var gate = PrefaceGate(alliance: alliance)
        XCTAssertThrowsError(try gate.admit(Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes, key: Self.hop, now: now)) {
            XCTAssertEqual($0 as? PrefaceError, .unknownAlliance)
        }
        XCTAssertNoThrow(try gate.admit(Preface.seal(connect(ts: now, alliance: alliance), to: Self.hop.publicKey).bytes, key: Self.hop, now: now))
    }

    func test_randomBytesAndWrongKeyDoNotOpen() throws {
        XCTAssertThrowsError(try Preface.open(SecureRandom.bytes(1632), with: Self.hop)) { XCTAssertEqual($0 as? PrefaceError, .doesNotOpen) }
        let other = try KEMKey(seed: [UInt8](repeating: 0x13, count: 32))
        let bytes = try Preface.seal(connect(ts: now), to: other.publicKey).bytes
        XCTAssertThrowsError(try Preface.open(bytes, with: Self.hop)) { XCTAssertEqual($0 as? PrefaceError, .doesNotOpen) }
        XCTAssertThrowsError(try Preface.open([], with: Self.hop)) { XCTAssertEqual($0 as? PrefaceError, .wrongSize(0)) }
    }

    func test_messageLongerThan493BytesCannotBeSealed() throws {
        let big = Preface.Message.hop(HopMessage(type: .connect, peer: RelayPeer(id: [UInt8](repeating: 1, count: 500))))
        XCTAssertThrowsError(try Preface.seal(big, to: Self.hop.publicKey))
    }
}
