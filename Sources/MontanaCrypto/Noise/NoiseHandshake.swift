import MontanaWire

/// Noise_PQ XX (PROTOCOL.md section 4) as two sans-I/O state machines. Messages here are the bytes
/// inside the `u16 BE length` framing; the caller frames them.
public enum NoisePQ {
    public static let protocolName = "Noise_PQXX_XWing_MLDSA65_ChaChaPoly_SHA256"
    public static let prologue = "montana/alliance/1"
    public static let kindHandshake: UInt8 = 0x01
    public static let kindResume: UInt8 = 0x02
    static let sigLabelResponder = Array("montana-noisepq-sig-r".utf8)
    static let sigLabelInitiator = Array("montana-noisepq-sig-i".utf8)

    static let sealedIdentity = IdentityKey.publicKeySize + 16
    static let sealedSignature = IdentityKey.signatureSize + 16
    /// Sizes with empty payloads (a payload adds its length).
    public static let message1Size = 1 + KEMKey.publicKeySize
    public static let message2MinSize = KEMKey.publicKeySize + KEMKey.ciphertextSize + sealedIdentity + sealedSignature + 16
    public static let message3MinSize = KEMKey.ciphertextSize + sealedIdentity + sealedSignature + 16
    public static let maxMessageSize = Int(UInt16.max)

    static func initialState() -> SymmetricState {
        var s = SymmetricState(protocolName: protocolName)
        s.mixHash(Array(prologue.utf8))
        return s
    }
}

/// What a completed handshake yields.
public struct NoiseSessionKeys: Sendable {
    public let sendKey: [UInt8]
    public let receiveKey: [UInt8]
    public let resumeSecret: [UInt8]
    public let handshakeHash: [UInt8]
    /// `H("montana-session-id" ‖ handshake_hash)[0..16]`.
    public var sessionID: [UInt8] { Array(Digests.sha256(Array("montana-session-id".utf8) + handshakeHash).prefix(16)) }
}

/// The other side's proven identity and its decrypted payload.
public struct NoisePeer: Sendable {
    public let identityPublicKey: [UInt8]
    public let payload: [UInt8]

    public init(identityPublicKey: [UInt8], payload: [UInt8]) {
        self.identityPublicKey = identityPublicKey
        self.payload = payload
    }

    public var nodeID: NodeID { NodeID(identityPublicKey: identityPublicKey) }
    public var accountID: [UInt8] { AccountID.derive(accountPublicKey: identityPublicKey) }
}

public struct NoiseInitiator {
    private enum Step { case start, sentMessage1, readMessage2, done, failed }

    private var step = Step.start
    private var state = NoisePQ.initialState()
    private let identity: IdentityKey
    private let expectedResponder: NodeID?
    private let entropy: any HandshakeEntropy
    private var ephemeral: KEMKey?
    private var responderEphemeral: [UInt8] = []
    public private(set) var responder: NoisePeer?
    /// `h` just before msg3's payload is encrypted: the EgressAuth binding.
    public private(set) var hashBeforePayload3: [UInt8] = []
    public private(set) var keys: NoiseSessionKeys?

    /// `expectedResponder` must be set whenever the initiator asked for a specific node (always,
    /// in Montana): otherwise a front could splice the session to a node of its choosing.
    public init(identity: IdentityKey, expectedResponder: NodeID?, entropy: any HandshakeEntropy = SystemEntropy()) {
        self.identity = identity
        self.expectedResponder = expectedResponder
        self.entropy = entropy
    }

    /// Every value `h` took so far, for conformance vectors.
    public var transcriptHashes: [[UInt8]] { state.hashHistory }

    /// msg1 = `0x01 ‖ e_i.pk`; only `e_i.pk` is hashed.
    public mutating func message1() throws -> [UInt8] {
        guard step == .start else { throw NoiseError.unexpectedMessage("message 1 already sent") }
        let e = try KEMKey(seed: entropy.ephemeralSeed())
        ephemeral = e
        state.mixHash(e.publicKey)
        step = .sentMessage1
        return [NoisePQ.kindHandshake] + e.publicKey
    }

    /// Reads msg2, verifies the responder's signature and that it is the node asked for.
    @discardableResult
    public mutating func readMessage2(_ message: [UInt8]) throws -> NoisePeer {
        guard step == .sentMessage1, let ephemeral else { throw NoiseError.unexpectedMessage("message 2 before message 1") }
        step = .failed
        guard message.count >= NoisePQ.message2MinSize, message.count <= NoisePQ.maxMessageSize else {
            throw NoiseError.wrongLength(message: "message 2", length: message.count)
        }
        var r = ByteReader(message)
        let eR = try r.readBytes(KEMKey.publicKeySize)
        let ctI = try r.readBytes(KEMKey.ciphertextSize)
        let sealedS = try r.readBytes(NoisePQ.sealedIdentity)
        let sealedSig = try r.readBytes(NoisePQ.sealedSignature)
        let sealedPayload = r.readRest()

        state.mixHash(eR)
        state.mixHash(ctI)
        state.mixKey(try ephemeral.decapsulate(ctI))
        let sR = try state.decryptAndHash(sealedS)
        let signedHash = state.h
        let sig = try state.decryptAndHash(sealedSig)
        guard IdentityKey.verify(publicKey: sR, signature: sig, message: NoisePQ.sigLabelResponder + signedHash) else {
            throw NoiseError.badSignature
        }
        let peer = NoisePeer(identityPublicKey: sR, payload: try state.decryptAndHash(sealedPayload))
        if let expectedResponder, peer.nodeID != expectedResponder {
            throw NoiseError.wrongResponder(expected: expectedResponder.short, got: peer.nodeID.short)
        }
        responderEphemeral = eR
        responder = peer
        step = .readMessage2
        return peer
    }

    /// Builds msg3. `payload` receives `h` before the payload is encrypted (the EgressAuth binding)
    /// and returns the payload bytes.
    public mutating func message3(payload: ([UInt8]) throws -> [UInt8]) throws -> [UInt8] {
        guard step == .readMessage2 else { throw NoiseError.unexpectedMessage("message 3 before message 2") }
        step = .failed
        let (ctR, ssR) = try entropy.encapsulate(to: responderEphemeral)
        state.mixHash(ctR)
        state.mixKey(ssR)
        var out = ctR
        out += try state.encryptAndHash(identity.publicKey)
        let sig = try entropy.sign(NoisePQ.sigLabelInitiator + state.h, with: identity)
        out += try state.encryptAndHash(sig)
        hashBeforePayload3 = state.h
        out += try state.encryptAndHash(try payload(state.h))
        guard out.count <= NoisePQ.maxMessageSize else { throw NoiseError.wrongLength(message: "message 3", length: out.count) }
        let split = state.split()
        keys = NoiseSessionKeys(sendKey: split[0], receiveKey: split[1], resumeSecret: split[2], handshakeHash: state.h)
        step = .done
        return out
    }
}

public struct NoiseResponder {
    private enum Step { case start, readMessage1, sentMessage2, done, failed }

    private var step = Step.start
    private var state = NoisePQ.initialState()
    private let identity: IdentityKey
    private let entropy: any HandshakeEntropy
    private var ephemeral: KEMKey?
    private var initiatorEphemeral: [UInt8] = []
    public private(set) var initiator: NoisePeer?
    public private(set) var hashBeforePayload3: [UInt8] = []
    public private(set) var keys: NoiseSessionKeys?

    public init(identity: IdentityKey, entropy: any HandshakeEntropy = SystemEntropy()) {
        self.identity = identity
        self.entropy = entropy
    }

    /// Every value `h` took so far, for conformance vectors.
    public var transcriptHashes: [[UInt8]] { state.hashHistory }

    public mutating func readMessage1(_ message: [UInt8]) throws {
        guard step == .start else { throw NoiseError.unexpectedMessage("message 1 twice") }
        step = .failed
        guard let kind = message.first else { throw NoiseError.truncated }
        guard kind == NoisePQ.kindHandshake else { throw NoiseError.badMessageKind(kind) }
        guard message.count == NoisePQ.message1Size else { throw NoiseError.wrongLength(message: "message 1", length: message.count) }
        let eI = Array(message[1...])
        state.mixHash(eI)
        initiatorEphemeral = eI
        step = .readMessage1
    }

    public mutating func message2(payload: [UInt8]) throws -> [UInt8] {
        guard step == .readMessage1 else { throw NoiseError.unexpectedMessage("message 2 before message 1") }
        step = .failed
        let e = try KEMKey(seed: entropy.ephemeralSeed())
        ephemeral = e
        state.mixHash(e.publicKey)
        // Encapsulation precedes signing, so a bad ephemeral key never costs a signature.
        guard let (ctI, ssI) = try? entropy.encapsulate(to: initiatorEphemeral) else { throw NoiseError.invalidPublicKey }
        state.mixHash(ctI)
        state.mixKey(ssI)
        var out = e.publicKey + ctI
        out += try state.encryptAndHash(identity.publicKey)
        let sig = try entropy.sign(NoisePQ.sigLabelResponder + state.h, with: identity)
        out += try state.encryptAndHash(sig)
        out += try state.encryptAndHash(payload)
        guard out.count <= NoisePQ.maxMessageSize else { throw NoiseError.wrongLength(message: "message 2", length: out.count) }
        step = .sentMessage2
        return out
    }

    @discardableResult
    public mutating func readMessage3(_ message: [UInt8]) throws -> NoisePeer {
        guard step == .sentMessage2, let ephemeral else { throw NoiseError.unexpectedMessage("message 3 before message 2") }
        step = .failed
        guard message.count >= NoisePQ.message3MinSize, message.count <= NoisePQ.maxMessageSize else {
            throw NoiseError.wrongLength(message: "message 3", length: message.count)
        }
        var r = ByteReader(message)
        let ctR = try r.readBytes(KEMKey.ciphertextSize)
        let sealedS = try r.readBytes(NoisePQ.sealedIdentity)
        let sealedSig = try r.readBytes(NoisePQ.sealedSignature)
        let sealedPayload = r.readRest()
        state.mixHash(ctR)
        state.mixKey(try ephemeral.decapsulate(ctR))
        let sI = try state.decryptAndHash(sealedS)
        let signedHash = state.h
        let sig = try state.decryptAndHash(sealedSig)
        guard IdentityKey.verify(publicKey: sI, signature: sig, message: NoisePQ.sigLabelInitiator + signedHash) else {
            throw NoiseError.badSignature
        }
        hashBeforePayload3 = state.h
        let peer = NoisePeer(identityPublicKey: sI, payload: try state.decryptAndHash(sealedPayload))
        let split = state.split()
        keys = NoiseSessionKeys(sendKey: split[1], receiveKey: split[0], resumeSecret: split[2], handshakeHash: state.h)
        initiator = peer
        step = .done
        return peer
    }
}
