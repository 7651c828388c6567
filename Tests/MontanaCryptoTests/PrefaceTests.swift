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

    func test_networkOverItsReplayShareIsRefusedWhileOtherNetworksAreAdmitted() throws {
        var gate = PrefaceGate(capacity: 8)
        let flooding = ReplayOwner(high: 0, low: 0xc000_0200, tag: 24), other = ReplayOwner(high: 0, low: 0xc633_6400, tag: 24)
        func admit(_ owner: ReplayOwner) throws {
            let sealed = try Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes
            let opened = try Preface.open(sealed, with: Self.hop)
            let digest = try gate.inspect(opened.message, kemCiphertext: Array(sealed.prefix(KEMKey.ciphertextSize)), now: now,
                                          owner: owner, ownerLimit: 2)
            try gate.remember(digest, now: now, owner: owner, ownerLimit: 2)
        }
        XCTAssertNoThrow(try admit(flooding))
        XCTAssertNoThrow(try admit(flooding))
        XCTAssertThrowsError(try admit(flooding)) { XCTAssertEqual($0 as? PrefaceError, .replayShareFull) }
        XCTAssertNoThrow(try admit(other), "only the network over its share degrades")
        XCTAssertEqual(gate.count(of: flooding), 2)
        XCTAssertEqual(gate.count(of: other), 1)
        XCTAssertEqual(gate.count, 3)
    }

    func test_inspectedPrefacesAreNotRememberedUntilTheCallerRemembersThem() throws {
        var gate = PrefaceGate(capacity: 1)
        let owner = ReplayOwner(high: 0, low: 1, tag: 24)
        let sealed = try Preface.seal(connect(ts: now), to: Self.hop.publicKey).bytes
        let opened = try Preface.open(sealed, with: Self.hop)
        let ct = Array(sealed.prefix(KEMKey.ciphertextSize))
        // Refused after inspection (say, over a handshake share): inspecting again is not a replay,
        // and a full memory of one entry still has room.
        for _ in 0..<3 { _ = try gate.inspect(opened.message, kemCiphertext: ct, now: now, owner: owner, ownerLimit: 1) }
        XCTAssertEqual(gate.count, 0, "nothing is remembered by inspecting")
        let digest = try gate.inspect(opened.message, kemCiphertext: ct, now: now, owner: owner, ownerLimit: 1)
        try gate.remember(digest, now: now, owner: owner, ownerLimit: 1)
        XCTAssertThrowsError(try gate.inspect(opened.message, kemCiphertext: ct, now: now + 1, owner: owner, ownerLimit: 1)) {
            XCTAssertEqual($0 as? PrefaceError, .replay)
        }
        XCTAssertThrowsError(try gate.remember(digest, now: now + 1, owner: nil, ownerLimit: 1)) {
            XCTAssertEqual($0 as? PrefaceError, .replay, "a second remember of the same preface is a replay (the race)")
        }
        // The owner's entries expire with the memory's: after 240 s its share is free again.
        let later = try Preface.seal(connect(ts: now + 241), to: Self.hop.publicKey).bytes
        let laterOpened = try Preface.open(later, with: Self.hop)
        let laterDigest = try gate.inspect(laterOpened.message, kemCiphertext: Array(later.prefix(KEMKey.ciphertextSize)),
                                           now: now + 241, owner: owner, ownerLimit: 1)
        try gate.remember(laterDigest, now: now + 241, owner: owner, ownerLimit: 1)
        XCTAssertEqual(gate.count(of: owner), 1)
    }

    func test_messageLongerThan493BytesCannotBeSealed() throws {
        let big = Preface.Message.hop(HopMessage(type: .connect, peer: RelayPeer(id: [UInt8](repeating: 1, count: 500))))
        XCTAssertThrowsError(try Preface.seal(big, to: Self.hop.publicKey))
    }
}
