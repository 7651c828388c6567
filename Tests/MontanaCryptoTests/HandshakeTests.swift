import MontanaCrypto
import MontanaWire
import XCTest

final class HandshakeTests: XCTestCase {
    static let initiatorKey = try! IdentityKey(seed: [UInt8](repeating: 0x31, count: 32))
    static let responderKey = try! IdentityKey(seed: [UInt8](repeating: 0x21, count: 32))
    static let otherKey = try! IdentityKey(seed: [UInt8](repeating: 0x22, count: 32))

    struct Transcript {
        var initiator: NoiseInitiator
        var responder: NoiseResponder
        var msg1: [UInt8] = []
        var msg2: [UInt8] = []
        var msg3: [UInt8] = []
    }

    /// Runs msg1 and msg2 and (unless stopped) msg3.
    func handshake(payloadR: [UInt8] = [], payloadI: [UInt8] = [], through: Int = 3) throws -> Transcript {
        var t = Transcript(initiator: NoiseInitiator(identity: Self.initiatorKey, expectedResponder: Self.responderKey.nodeID),
                           responder: NoiseResponder(identity: Self.responderKey))
        t.msg1 = try t.initiator.message1()
        try t.responder.readMessage1(t.msg1)
        t.msg2 = try t.responder.message2(payload: payloadR)
        if through >= 3 {
            try t.initiator.readMessage2(t.msg2)
            t.msg3 = try t.initiator.message3 { _ in payloadI }
            try t.responder.readMessage3(t.msg3)
        }
        return t
    }

    func test_bothSidesDeriveIdenticalKeysAndLearnEachOthersIdentity() throws {
        let t = try handshake(payloadR: [1, 2, 3], payloadI: [4, 5])
        let i = try XCTUnwrap(t.initiator.keys), r = try XCTUnwrap(t.responder.keys)
        XCTAssertEqual(i.sendKey, r.receiveKey)
        XCTAssertEqual(i.receiveKey, r.sendKey)
        XCTAssertNotEqual(i.sendKey, i.receiveKey)
        XCTAssertEqual(i.resumeSecret, r.resumeSecret)
        XCTAssertEqual(i.handshakeHash, r.handshakeHash)
        XCTAssertEqual(i.sessionID, r.sessionID)
        XCTAssertEqual(i.sessionID.count, 16)
        XCTAssertEqual(t.initiator.responder?.payload, [1, 2, 3])
        XCTAssertEqual(t.responder.initiator?.payload, [4, 5])
        XCTAssertEqual(t.responder.initiator?.identityPublicKey, Self.initiatorKey.publicKey)
        XCTAssertEqual(t.initiator.hashBeforePayload3, t.responder.hashBeforePayload3)
    }

    func test_messageSizesMatchTheSpec() throws {
        let t = try handshake()
        XCTAssertEqual(t.msg1.count, 1217)
        XCTAssertEqual(t.msg2.count, NoisePQ.message2MinSize)
        XCTAssertEqual(t.msg3.count, NoisePQ.message3MinSize)
    }

    func test_identitiesTravelEncrypted() throws {
        let t = try handshake()
        let needle = Array(Self.responderKey.publicKey.prefix(64))
        XCTAssertNil(t.msg2.firstRange(of: needle))
        XCTAssertNil(t.msg3.firstRange(of: Array(Self.initiatorKey.publicKey.prefix(64))))
    }

    func test_responderThatIsNotTheRequestedNodeIsRefused() throws {
        var initiator = NoiseInitiator(identity: Self.initiatorKey, expectedResponder: Self.otherKey.nodeID)
        var responder = NoiseResponder(identity: Self.responderKey)
        try responder.readMessage1(initiator.message1())
        let msg2 = try responder.message2(payload: [])
        XCTAssertThrowsError(try initiator.readMessage2(msg2)) { error in
            guard case NoiseError.wrongResponder = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try initiator.message3 { _ in [] })
        XCTAssertNil(initiator.keys)
    }

    func test_everyBitFlipRegionInMessage2FailsClosed() throws {
        // One flip in each field: e_r, ct_i, c(s_r), c(sig_r), c(payload_r).
        for offset in [5, 1216 + 5, 2336 + 5, 2336 + 1968 + 5, NoisePQ.message2MinSize - 3] {
            var t = try handshake(through: 2)
            t.msg2[offset] ^= 0x04
            XCTAssertThrowsError(try t.initiator.readMessage2(t.msg2), "flip at \(offset)")
            XCTAssertNil(t.initiator.keys)
        }
    }

    func test_everyBitFlipRegionInMessage3FailsClosed() throws {
        for offset in [5, 1120 + 5, 1120 + 1968 + 5, NoisePQ.message3MinSize - 3] {
            var t = try handshake(through: 2)
            try t.initiator.readMessage2(t.msg2)
            var msg3 = try t.initiator.message3 { _ in [] }
            msg3[offset] ^= 0x80
            XCTAssertThrowsError(try t.responder.readMessage3(msg3), "flip at \(offset)")
            XCTAssertNil(t.responder.keys)
        }
    }

    func test_truncatedAndOversizedMessagesAreTypedErrors() throws {
        var responder = NoiseResponder(identity: Self.responderKey)
        XCTAssertThrowsError(try responder.readMessage1([])) { XCTAssertEqual($0 as? NoiseError, .truncated) }
        responder = NoiseResponder(identity: Self.responderKey)
        XCTAssertThrowsError(try responder.readMessage1([0x01] + [UInt8](repeating: 0, count: 100))) {
            XCTAssertEqual($0 as? NoiseError, .wrongLength(message: "message 1", length: 101))
        }
        responder = NoiseResponder(identity: Self.responderKey)
        XCTAssertThrowsError(try responder.readMessage1([0x07] + [UInt8](repeating: 0, count: 1216))) {
            XCTAssertEqual($0 as? NoiseError, .badMessageKind(7))
        }
        var t = try handshake(through: 2)
        XCTAssertThrowsError(try t.initiator.readMessage2(Array(t.msg2.dropLast(17)))) {
            guard case NoiseError.wrongLength = $0 else { return XCTFail("\($0)") }
        }
        t = try handshake(through: 2)
        XCTAssertThrowsError(try t.initiator.readMessage2(t.msg2 + [UInt8](repeating: 0, count: 65536))) {
            guard case NoiseError.wrongLength = $0 else { return XCTFail("\($0)") }
        }
    }

    func test_signatureByAnotherKeyIsRefused() throws {
        struct ForgingEntropy: HandshakeEntropy {
            func ephemeralSeed() -> [UInt8] { SecureRandom.bytes(32) }
            func encapsulate(to publicKey: [UInt8]) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) { try KEMKey.encapsulate(to: publicKey) }
            func sign(_ message: [UInt8], with key: IdentityKey) throws -> [UInt8] { try HandshakeTests.otherKey.sign(message) }
        }
        var initiator = NoiseInitiator(identity: Self.initiatorKey, expectedResponder: Self.responderKey.nodeID)
        var responder = NoiseResponder(identity: Self.responderKey, entropy: ForgingEntropy())
        try responder.readMessage1(initiator.message1())
        XCTAssertThrowsError(try initiator.readMessage2(responder.message2(payload: []))) { XCTAssertEqual($0 as? NoiseError, .badSignature) }
    }

    func test_messagesOutOfOrderAreRefused() throws {
        var initiator = NoiseInitiator(identity: Self.initiatorKey, expectedResponder: nil)
        XCTAssertThrowsError(try initiator.message3 { _ in [] })
        var responder = NoiseResponder(identity: Self.responderKey)
        XCTAssertThrowsError(try responder.message2(payload: []))
        XCTAssertThrowsError(try responder.readMessage3([UInt8](repeating: 0, count: NoisePQ.message3MinSize)))
    }

    func test_egressAuthVerifiesAndBindsToTheSession() throws {
        let now: UInt64 = 1_800_000_000
        let exit = Self.responderKey.nodeID
        var t = try handshake(through: 2)
        try t.initiator.readMessage2(t.msg2)
        t.msg3 = try t.initiator.message3 { h in
            TLV.encode([TLV(type: PayloadTLV.egressAuth, value: try EgressAuthProof.build(account: Self.initiatorKey, exit: exit, bindingHash: h, now: now).encode())])
        }
        let peer = try t.responder.readMessage3(t.msg3)
        let auth = try XCTUnwrap(TLV.decode(peer.payload).first { $0.type == PayloadTLV.egressAuth }).value
        var verifier = EgressAuthVerifier(exit: exit, admission: .anyAccount)
        let admitted = try verifier.verify(auth, initiatorPublicKey: peer.identityPublicKey, bindingHash: t.responder.hashBeforePayload3, now: now)
        XCTAssertEqual(admitted.accountID, Self.initiatorKey.accountID)
        // The same proof a second time (a replay into another session) is refused.
        XCTAssertThrowsError(try verifier.verify(auth, initiatorPublicKey: peer.identityPublicKey, bindingHash: t.responder.hashBeforePayload3, now: now)) {
            XCTAssertEqual($0 as? EgressAuthError, .nonceReused)
        }
        // Bound to another session's hash, it fails.
        var fresh = EgressAuthVerifier(exit: exit, admission: .anyAccount)
        XCTAssertThrowsError(try fresh.verify(auth, initiatorPublicKey: peer.identityPublicKey, bindingHash: [UInt8](repeating: 1, count: 32), now: now)) {
            XCTAssertEqual($0 as? EgressAuthError, .nonceMismatch)
        }
        // Presented by another identity, it fails.
        XCTAssertThrowsError(try fresh.verify(auth, initiatorPublicKey: Self.otherKey.publicKey, bindingHash: t.responder.hashBeforePayload3, now: now)) {
            XCTAssertEqual($0 as? EgressAuthError, .identityMismatch)
        }
        // For another exit, it fails.
        var otherExit = EgressAuthVerifier(exit: Self.otherKey.nodeID, admission: .anyAccount)
        XCTAssertThrowsError(try otherExit.verify(auth, initiatorPublicKey: peer.identityPublicKey, bindingHash: t.responder.hashBeforePayload3, now: now)) {
            XCTAssertEqual($0 as? EgressAuthError, .badProof)
        }
        // In the next slot it is still valid; two slots later it is not.
        var later = EgressAuthVerifier(exit: exit, admission: .anyAccount)
        XCTAssertNoThrow(try later.verify(auth, initiatorPublicKey: peer.identityPublicKey, bindingHash: t.responder.hashBeforePayload3, now: now + 120))
        var muchLater = EgressAuthVerifier(exit: exit, admission: .anyAccount)
        XCTAssertThrowsError(try muchLater.verify(auth, initiatorPublicKey: peer.identityPublicKey, bindingHash: t.responder.hashBeforePayload3, now: now + 240)) {
            XCTAssertEqual($0 as? EgressAuthError, .badProof)
        }
    }

    func test_admissionByAllowListAndByPass() throws {
        let now: UInt64 = 1_800_000_000
        let exit = Self.responderKey.nodeID
        let h = [UInt8](repeating: 9, count: 32)
        let issuer = Self.otherKey
        let pass = AccountPass(accountID: Self.initiatorKey.accountID, notBefore: now - 10, notAfter: now + 3600, tier: 1, issuer: issuer.nodeID.bytes)
        let signedPass = try PassSigner.sign(pass, with: issuer).encode()

        let withPass = try EgressAuthProof.build(account: Self.initiatorKey, exit: exit, bindingHash: h, now: now, signedPass: signedPass).encode()
        var byPass = EgressAuthVerifier(exit: exit, admission: .pass(issuers: [issuer.publicKey], allowList: []))
        XCTAssertEqual(try byPass.verify(withPass, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: h, now: now).pass, pass)

        let noPass = try EgressAuthProof.build(account: Self.initiatorKey, exit: exit, bindingHash: h, now: now).encode()
        var needsPass = EgressAuthVerifier(exit: exit, admission: .pass(issuers: [issuer.publicKey], allowList: []))
        XCTAssertThrowsError(try needsPass.verify(noPass, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: h, now: now)) {
            guard case EgressAuthError.notAdmitted = $0 else { return XCTFail("\($0)") }
        }
        var expired = EgressAuthVerifier(exit: exit, admission: .pass(issuers: [issuer.publicKey], allowList: []))
        let late = try EgressAuthProof.build(account: Self.initiatorKey, exit: exit, bindingHash: h, now: now + 7200, signedPass: signedPass).encode()
        XCTAssertThrowsError(try expired.verify(late, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: h, now: now + 7200))
        var untrusted = EgressAuthVerifier(exit: exit, admission: .pass(issuers: [Self.responderKey.publicKey], allowList: []))
        XCTAssertThrowsError(try untrusted.verify(withPass, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: h, now: now))

        var allow = EgressAuthVerifier(exit: exit, admission: .allowList([Self.initiatorKey.accountID]))
        XCTAssertNoThrow(try allow.verify(noPass, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: h, now: now))
        var deny = EgressAuthVerifier(exit: exit, admission: .allowList([Self.otherKey.accountID]))
        XCTAssertThrowsError(try deny.verify(noPass, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: h, now: now))
    }

    func test_malformedEgressAuthIsRejected() throws {
        var v = EgressAuthVerifier(exit: Self.responderKey.nodeID, admission: .anyAccount)
        for bytes in [[], [0x01], [0x01, 0x02] + [UInt8](repeating: 0, count: EgressAuth.baseSize - 2), [UInt8](repeating: 1, count: EgressAuth.baseSize + 1)] {
            XCTAssertThrowsError(try v.verify(bytes, initiatorPublicKey: Self.initiatorKey.publicKey, bindingHash: [], now: 0)) {
                XCTAssertEqual($0 as? EgressAuthError, .malformed)
            }
        }
    }
}
