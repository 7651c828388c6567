import MontanaCrypto
import NIOCore

/// The T1 front's decisions for one connection (PROTOCOL.md 2.2, T1-RESEARCH.md 4.5), bytes in
/// and actions out, no I/O. The connection to the cover is opened for everyone at accept.
///
/// - `hello`: every client byte goes to the cover as it arrives. When the ClientHello is
///   complete, `verify` decides; no token (or bytes past the hello before the cover answered, or
///   the cover answering first) → `.splice`: a byte splice to the cover for the connection's life.
/// - `candidate` (a token holder): whole records both ways, relayed unchanged except the cover's
///   first encrypted record, whose first 16 bytes get the mask. The cover must answer a TLS 1.3
///   ServerHello (not a HelloRetryRequest), else splice. Client CCS and its first encrypted record
///   (its Finished) go to the cover; the next encrypted record is held and opened under c0: the
///   InnerHello → `.switched` (the InnerReply goes to the client); anything else goes to the cover
///   and the connection is spliced from then on.
/// - `switched`: client records are T1 frames (`.carrier` plaintext); the cover's records keep
///   going to the client unchanged until the caller ends the grace period (`endGrace`).
public struct T1FrontSession: Sendable {
    public enum Action: Equatable, Sendable {
        case toCover([UInt8])
        case toClient([UInt8])
        /// From now on a plain splice (write every earlier action first).
        case splice
        /// The switch happened: carrier bytes travel in T1 frames (`frames`) from now on.
        case switched
        /// Carrier bytes from the client, opened.
        case carrier([UInt8])
        /// Close the connection (a T1 frame failed to open).
        case close
    }

    enum Phase: Equatable { case hello, candidate, switched, grace, splice, closed }

    public typealias Verifier = @Sendable (ParsedClientHello) -> T1Token.Opened?

    private let verify: Verifier
    private var phase = Phase.hello
    private var helloBytes: [UInt8] = []
    private var hello: ParsedClientHello?
    private var opened: T1Token.Opened?
    private var clientReader = TLSRecordReader()
    private var coverReader = TLSRecordReader()
    private var serverHello: [UInt8]?
    private var serverRandom: [UInt8] = []
    private var masked = false
    private var clientFinished: [UInt8]?
    public private(set) var frames: T1FrameState?
    /// Why a connection was spliced (for counters): nil while undecided or switched.
    public private(set) var spliceReason: String?

    public init(verify: @escaping Verifier) {
        self.verify = verify
    }

    public var isSwitched: Bool { phase == .switched || phase == .grace }
    public var isSpliced: Bool { phase == .splice }

    private mutating func splice(_ why: String, _ actions: inout [Action]) {
        let toCover = clientReader.takeRemaining(), toClient = coverReader.takeRemaining()
        if !toCover.isEmpty { actions.append(.toCover(toCover)) }
        if !toClient.isEmpty { actions.append(.toClient(toClient)) }
        actions.append(.splice)
        spliceReason = why
        phase = .splice
    }

    public mutating func fromClient(_ bytes: [UInt8]) -> [Action] {
        var actions: [Action] = []
        switch phase {
        case .splice, .closed:
            return [.toCover(bytes)]
        case .hello:
            actions.append(.toCover(bytes))
            helloBytes += bytes
            let outcome: ClientHelloParser.Outcome
            do { outcome = try ClientHelloParser.parse(helloBytes) } catch {
                splice("malformed", &actions)
                return actions
            }
            guard case .hello(let parsed) = outcome else { return actions }
            guard let opened = verify(parsed) else {
                splice("no_token", &actions)
                return actions
            }
            guard helloBytes.count == parsed.recordBytes else {
                splice("early_data", &actions)
                return actions
            }
            hello = parsed
            self.opened = opened
            helloBytes = []
            phase = .candidate
            return actions
        case .candidate:
            clientReader.append(bytes)
            while phase == .candidate {
                let next: TLSRecord?
                do { next = try clientReader.next() } catch {
                    splice("client_record", &actions)
                    break
                }
                guard let record = next else { break }
                candidateClientRecord(record, &actions)
            }
            return actions
        case .switched, .grace:
            guard var f = frames else { return [.close] }
            do {
                let plain = try f.open(bytes)
                frames = f
                return plain.isEmpty ? [] : [.carrier(plain)]
            } catch {
                phase = .closed
                return [.close]
            }
        }
    }

    private mutating func candidateClientRecord(_ record: TLSRecord, _ actions: inout [Action]) {
        switch record.type {
        case TLSRecord.contentChangeCipherSpec:
            actions.append(.toCover(record.wire))
        case TLSRecord.contentApplicationData where clientFinished == nil:
            actions.append(.toCover(record.wire))
            clientFinished = record.wire
            if serverHello == nil || !masked { splice("order", &actions) }
        case TLSRecord.contentApplicationData:
            if let reply = trySwitch(record) {
                actions.append(.toClient(reply))
                actions.append(.switched)
                phase = .switched
                let rest = clientReader.takeRemaining()
                if !rest.isEmpty, var f = frames {
                    if let plain = try? f.open(rest) {
                        frames = f
                        if !plain.isEmpty { actions.append(.carrier(plain)) }
                    } else {
                        phase = .closed
                        actions.append(.close)
                    }
                }
            } else {
                actions.append(.toCover(record.wire))
                splice("no_proof", &actions)
            }
        default:
            actions.append(.toCover(record.wire))
            splice("client_record", &actions)
        }
    }

    /// The InnerReply record when `record` is an InnerHello under c0 (keys set), else nil.
    private mutating func trySwitch(_ record: TLSRecord) -> [UInt8]? {
        guard let opened, let hello, let finished = clientFinished, let serverHello else { return nil }
        var (c0, s0) = T1Switch.stage0(authKey: opened.authKey, serverRandom: serverRandom, clientFinishedRecord: finished)
        guard let (inner, type) = try? c0.open(header: record.header, payload: record.payload),
              type == TLSRecord.contentApplicationData, inner.count >= 2, inner[0] == T1Switch.innerVersion,
              let x = hello.keyShare(0x001d), let hybrid = hello.keyShare(0x11ec), hybrid.count == ChromeClientHello.mlkemPublicLength + 32,
              let reply = try? T1Switch.reply(clientX25519: x, clientMLKEM: Array(hybrid[0..<ChromeClientHello.mlkemPublicLength])),
              let sealed = try? s0.seal(reply.plain, type: TLSRecord.contentApplicationData) else { return nil }
        let keys = T1Switch.traffic(authKey: opened.authKey, transcript: hello.handshake + serverHello + inner + reply.plain,
                                    x25519: reply.x25519, mlkem: reply.mlkem)
        frames = T1FrameState(sealer: keys.server, opener: keys.client, cover: nil)
        return sealed
    }

    public mutating func fromCover(_ bytes: [UInt8]) -> [Action] {
        var actions: [Action] = []
        switch phase {
        case .splice, .closed:
            return [.toClient(bytes)]
        case .hello:
            // The cover answered before a whole ClientHello: not a T1 client.
            actions.append(.toClient(bytes))
            splice("cover_first", &actions)
            return actions
        case .candidate, .switched:
            coverReader.append(bytes)
            while phase == .candidate || phase == .switched {
                let next: TLSRecord?
                do { next = try coverReader.next() } catch {
                    if phase == .candidate { splice("cover_record", &actions) } else { _ = coverReader.takeRemaining() }
                    break
                }
                guard var record = next else { break }
                if phase == .switched {
                    actions.append(.toClient(record.wire))   // grace: genuine post-handshake records
                    continue
                }
                switch record.type {
                case TLSRecord.contentHandshake where serverHello == nil:
                    guard let message = Self.serverHelloMessage(record.payload), let info = ServerHelloInfo.parse(message),
                          info.isTLS13, !info.isHelloRetry else {
                        actions.append(.toClient(record.wire))
                        splice("cover_not_tls13", &actions)
                        continue
                    }
                    serverHello = message
                    serverRandom = info.random
                    actions.append(.toClient(record.wire))
                case TLSRecord.contentApplicationData where serverHello != nil && !masked && opened != nil:
                    masked = true
                    let mask = T1Switch.mask(authKey: opened!.authKey, serverRandom: serverRandom)
                    guard T1Switch.apply(mask: mask, to: &record.payload) else {
                        actions.append(.toClient(record.wire))
                        splice("cover_short_record", &actions)
                        continue
                    }
                    actions.append(.toClient(record.wire))
                case TLSRecord.contentChangeCipherSpec, TLSRecord.contentApplicationData where serverHello != nil:
                    actions.append(.toClient(record.wire))
                default:
                    actions.append(.toClient(record.wire))
                    splice("cover_record", &actions)
                }
            }
            return actions
        case .grace:
            return []
        }
    }

    /// Ends the grace period: cover bytes are dropped from now on (the caller closes the cover).
    public mutating func endGrace() {
        if phase == .switched {
            phase = .grace
            _ = coverReader.takeRemaining()
        }
    }

    /// Carrier bytes for the client, as T1 frames appended to `out` (false: not switched, or sealing failed).
    public mutating func seal(_ plain: ByteBuffer, into out: inout ByteBuffer) -> Bool {
        guard isSwitched, var f = frames, (try? f.seal(plain, into: &out)) != nil else { return false }
        frames = f
        return true
    }

    /// Carrier bytes for the client, as T1 frames.
    public mutating func seal(_ plain: [UInt8]) -> [UInt8]? {
        guard isSwitched, var f = frames, let out = try? f.seal(plain) else { return nil }
        frames = f
        return out
    }

    /// The ServerHello message when `payload` (one record) holds exactly one whole ServerHello.
    static func serverHelloMessage(_ payload: [UInt8]) -> [UInt8]? {
        guard payload.count >= 4, payload[0] == 0x02 else { return nil }
        let n = Int(payload[1]) << 16 | Int(payload[2]) << 8 | Int(payload[3])
        guard payload.count == 4 + n else { return nil }
        return payload
    }
}
