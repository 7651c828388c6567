import MontanaCrypto

/// The T1 client's side of the relayed handshake (PROTOCOL.md 2.2), bytes in and bytes out, no I/O:
///
/// 1. `firstFlight`: the Chrome-shaped ClientHello with the token.
/// 2. The cover's ServerHello (TLS 1.3, no HelloRetryRequest), then its encrypted flight: the
///    first encrypted record must open under the server handshake key **after** removing the
///    front's 16-byte mask — that is the front's proof. A record that opens without un-masking is
///    the genuine site with no front in between (`FailureReason.untagged`): nothing of ours is sent.
/// 3. The real handshake is completed with the cover: server Finished verified, then CCS and the
///    client Finished (under the client handshake key), then the InnerHello under c0.
/// 4. The InnerReply under s0 gives the T1 traffic keys: `established`. Records of the cover
///    (NewSessionTickets) that arrive before or around it open under the cover's server
///    application key and are dropped.
public struct T1ClientHandshake: Sendable {
    public enum FailureReason: Error, Equatable, Sendable, CustomStringConvertible {
        /// The first encrypted record opened without the front's mask: a plain TLS site answered.
        case untagged
        /// Neither with nor without the mask: not TLS 1.3 from a site, or corrupted in transit.
        case undecryptable
        case helloRetry
        case notTLS13
        case unsupported(String)
        case alert(UInt8)
        case malformed(String)
        case badFinished
        case badReply

        public var description: String {
            switch self {
            case .untagged: return "the address answered as a plain web site with no Montana tag (not a Montana front, a front that refused the token — clock more than 90 s off? wrong T1 key or short id? — or a middlebox)"
            case .undecryptable: return "the first encrypted record opened neither with nor without the front's tag"
            case .helloRetry: return "the cover site asked for another key share (HelloRetryRequest); T1 needs a cover that accepts Chrome's shares"
            case .notTLS13: return "the cover site did not choose TLS 1.3"
            case .unsupported(let what): return "the cover site chose \(what), which T1 does not support"
            case .alert(let code): return "the cover site sent TLS alert \(code)"
            case .malformed(let what): return "malformed TLS from the front: \(what)"
            case .badFinished: return "the cover's Finished did not verify"
            case .badReply: return "the front's T1 reply did not verify"
            }
        }
    }

    enum Phase { case serverHello, encrypted, innerReply, established }

    public let hello: T1Hello.Client
    private var phase = Phase.serverHello
    private var reader = TLSRecordReader()
    private var transcript: [UInt8]
    private var serverHelloMessage: [UInt8] = []
    private var serverRandom: [UInt8] = []
    private var schedule: TLS13.Schedule?
    private var clientHandshakeSecret: [UInt8] = []
    private var serverHandshakeSecret: [UInt8] = []
    private var serverHandshake: TLS13.RecordCipher?
    private var coverApplication: TLS13.RecordCipher?
    private var assembler = HandshakeAssembler()
    private var firstEncrypted = true
    private var stage0Server: TLS13.RecordCipher?
    private var innerHello: [UInt8] = []
    private var droppedBeforeReply = 0
    /// After `established`: the T1 frame layer (with the bytes that followed the reply).
    public private(set) var frames: T1FrameState?
    /// Carrier bytes that arrived with the reply (already opened).
    public private(set) var earlyPlaintext: [UInt8] = []

    public init(hello: T1Hello.Client) {
        self.hello = hello
        transcript = Array(hello.record[5...])
    }

    public var firstFlight: [UInt8] { hello.record }
    public var isEstablished: Bool { phase == .established }

    /// Feeds bytes from the front; returns bytes to send (maybe none).
    public mutating func receive(_ bytes: [UInt8]) throws(FailureReason) -> [UInt8] {
        if phase == .established {
            return []
        }
        reader.append(bytes)
        var out: [UInt8] = []
        while phase != .established {
            let next: TLSRecord?
            do { next = try reader.next() } catch { throw .malformed("a TLS record header") }
            guard let record = next else { break }
            out += try handle(record)
        }
        if phase == .established, var f = frames {
            let rest = reader.takeRemaining()
            if !rest.isEmpty {
                do { earlyPlaintext += try f.open(rest) } catch { throw .badReply }
            }
            frames = f
        }
        return out
    }

    private mutating func handle(_ record: TLSRecord) throws(FailureReason) -> [UInt8] {
        if record.type == TLSRecord.contentAlert {
            throw .alert(record.payload.count == 2 ? record.payload[1] : 0)
        }
        switch phase {
        case .serverHello:
            if record.type == TLSRecord.contentChangeCipherSpec { return [] }
            guard record.type == TLSRecord.contentHandshake else { throw .malformed("expected a ServerHello") }
            do { try assembler.append(record.payload) } catch { throw .malformed("an oversized handshake") }
            let got: (type: UInt8, message: [UInt8])?
            do { got = try assembler.next() } catch { throw .malformed("an oversized handshake") }
            guard let (type, message) = got else { return [] }
            guard type == 0x02, assembler.isEmpty, let sh = ServerHelloInfo.parse(message) else { throw .malformed("expected a ServerHello") }
            guard !sh.isHelloRetry else { throw .helloRetry }
            guard sh.isTLS13 else { throw .notTLS13 }
            guard let suite = TLS13.Suite(rawValue: sh.cipherSuite) else { throw .unsupported("cipher suite \(sh.cipherSuite)") }
            guard let group = sh.keyShareGroup,
                  let shared = T1Switch.coverSharedSecret(group: group, serverShare: sh.keyShare, shares: hello.shares) else {
                throw .unsupported("key share group \(sh.keyShareGroup.map(String.init) ?? "none")")
            }
            transcript += message
            serverHelloMessage = message
            serverRandom = sh.random
            let schedule = TLS13.Schedule(suite: suite, sharedSecret: shared)
            (clientHandshakeSecret, serverHandshakeSecret) = schedule.handshakeTraffic(helloHash: suite.hash(transcript))
            serverHandshake = TLS13.RecordCipher(suite: suite, trafficSecret: serverHandshakeSecret)
            self.schedule = schedule
            assembler = HandshakeAssembler()
            phase = .encrypted
            return []
        case .encrypted:
            if record.type == TLSRecord.contentChangeCipherSpec { return [] }
            guard record.type == TLSRecord.contentApplicationData, var cipher = serverHandshake else { throw .malformed("expected an encrypted record") }
            let opened: (content: [UInt8], type: UInt8)
            if firstEncrypted {
                firstEncrypted = false
                var unmasked = record.payload
                let mask = T1Switch.mask(authKey: hello.authKey, serverRandom: serverRandom)
                guard T1Switch.apply(mask: mask, to: &unmasked) else { throw .malformed("a short encrypted record") }
                var plain = cipher
                if let o = try? cipher.open(header: record.header, payload: unmasked) {
                    opened = o
                } else if (try? plain.open(header: record.header, payload: record.payload)) != nil {
                    throw .untagged
                } else {
                    throw .undecryptable
                }
            } else {
                guard let o = try? cipher.open(header: record.header, payload: record.payload) else { throw .undecryptable }
                opened = o
            }
            serverHandshake = cipher
            guard opened.type == TLSRecord.contentHandshake else { throw .malformed("application data before the cover's Finished") }
            do { try assembler.append(opened.content) } catch { throw .malformed("an oversized handshake") }
            while true {
                let got: (type: UInt8, message: [UInt8])?
                do { got = try assembler.next() } catch { throw .malformed("an oversized handshake message") }
                guard let (type, message) = got else { return [] }
                if type == 20 { return try finish(serverFinished: message) }
                transcript += message
            }
        case .innerReply:
            guard record.type == TLSRecord.contentApplicationData, var s0 = stage0Server else { throw .malformed("expected the T1 reply") }
            if let (content, _) = try? s0.open(header: record.header, payload: record.payload) {
                let secrets: (x25519: [UInt8], mlkem: [UInt8])
                do { secrets = try T1Switch.accept(reply: content, shares: hello.shares) } catch { throw .badReply }
                let keys = T1Switch.traffic(authKey: hello.authKey, transcript: Array(hello.record[5...]) + serverHelloMessage + innerHello + content,
                                            x25519: secrets.x25519, mlkem: secrets.mlkem)
                frames = T1FrameState(sealer: keys.client, opener: keys.server, cover: coverApplication)
                phase = .established
                return []
            }
            // The cover's own records (tickets) relayed before the switch: drop what opens under its key.
            guard droppedBeforeReply < T1FrameState.maxCoverRecords, var cover = coverApplication,
                  (try? cover.open(header: record.header, payload: record.payload)) != nil else { throw .badReply }
            coverApplication = cover
            droppedBeforeReply += 1
            return []
        case .established:
            return []
        }
    }

    /// Verifies the cover's Finished, answers with CCS + client Finished + InnerHello.
    private mutating func finish(serverFinished: [UInt8]) throws(FailureReason) -> [UInt8] {
        guard let schedule, assembler.isEmpty else { throw .malformed("data after the cover's Finished") }
        let suite = schedule.suite
        let expected = schedule.finished(baseKey: serverHandshakeSecret, transcriptHash: suite.hash(transcript))
        guard serverFinished.count == 4 + expected.count, ConstantTime.equal(Array(serverFinished[4...]), expected) else { throw .badFinished }
        transcript += serverFinished
        let apps = schedule.applicationTraffic(serverFinishedHash: suite.hash(transcript))
        coverApplication = TLS13.RecordCipher(suite: suite, trafficSecret: apps.server)
        let verify = schedule.finished(baseKey: clientHandshakeSecret, transcriptHash: suite.hash(transcript))
        let n = verify.count
        var clientHS = TLS13.RecordCipher(suite: suite, trafficSecret: clientHandshakeSecret)
        let finishedRecord: [UInt8]
        do {
            finishedRecord = try clientHS.seal([20, 0, UInt8(n >> 8), UInt8(n & 0xff)] + verify, type: TLSRecord.contentHandshake)
        } catch { throw .malformed("sealing Finished") }
        let stage = T1Switch.stage0(authKey: hello.authKey, serverRandom: serverRandom, clientFinishedRecord: finishedRecord)
        var c0 = stage.client
        // InnerHello: version, flags; padded to 60–120 bytes of inner plaintext like a browser's
        // first request record.
        innerHello = [T1Switch.innerVersion, 0]
        let sealedHello: [UInt8]
        do { sealedHello = try c0.seal(innerHello, type: TLSRecord.contentApplicationData, padding: Int.random(in: 57...117)) }
        catch { throw .malformed("sealing the InnerHello") }
        stage0Server = stage.server
        phase = .innerReply
        return [0x14, 0x03, 0x03, 0x00, 0x01, 0x01] + finishedRecord + sealedHello
    }
}
