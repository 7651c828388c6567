import Foundation
import MontanaCrypto
import MontanaExit
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOEmbedded

/// The stateful target: a real responder session (Noise_PQ XX with fixed identities, EgressAuth
/// verified, the node's stream services) in an `EmbeddedChannel`, driven past authentication by
/// a scripted initiator. The fuzz input then becomes transport records, yamux frames, multistream
/// lines, egress messages, timer jumps and carrier writability changes, so the handlers behind
/// the handshake (where floods and hoarding live) see random input. Every step checks that the
/// session holds no more than its documented bounds.
enum SessionFuzz {
    /// What a session may hold at once in yamux backlog and stream overflows: the 4 MiB session
    /// backlog plus one 1 MiB overflow per stream of a control session, with room to spare.
    static let maxHeldBytes = 4 * 1024 * 1024 + 16 * MuxStream.maxOverflowBytes + 1024 * 1024
    /// The most one step may make the session answer: far above an honest answer, far below a leak.
    static let maxOutboundPerStep = 32 * 1024 * 1024
    static let protocols = ["/ipfs/ping/1.0.0", "/montana/ip-echo/1.0.0", EgressMessage.protocolID, "/nope/1.0.0"]

    static func run(_ input: [UInt8]) {
        guard let session = try? ResponderSessionHarness.make() else { return }
        defer { session.finish() }
        var reader = FuzzReader(input)
        var nextStream: UInt32 = 1
        while let op = reader.byte() {
            switch op % 8 {
            case 0:
                session.sendData(reader.bytes(Int(reader.u16() % 16384)))
            case 1:
                var frame = ByteBuffer()
                let type = reader.byte() ?? 0, flags = UInt16(reader.byte() ?? 0), id = UInt32(reader.byte() ?? 0)
                let body = reader.bytes(Int(reader.byte() ?? 0) * 64)
                frame.writeInteger(UInt8(0))
                frame.writeInteger(type % 4)
                frame.writeInteger(flags)
                frame.writeInteger(id)
                frame.writeInteger(type % 4 == 0 ? UInt32(body.count) : reader.u32())
                frame.writeBytes(body)
                session.sendData(Array(frame.readableBytesView))
            case 2:
                let name = protocols[Int(reader.byte() ?? 0) % protocols.count]
                let frame = ResponderSessionHarness.streamOpening(id: nextStream, protocol: name, then: reader.bytes(Int(reader.u16() % 8192)))
                nextStream &+= 2
                session.sendData(frame)
            case 3:
                let kind = reader.byte() ?? 0
                switch kind % 3 {
                case 0: session.sendRecord(.ack(UInt64(reader.u32())))
                case 1: session.sendRecord(.padding(Int(reader.u16() % 4096)))
                default: session.sendRecord(.close(reader.byte() ?? 0))
                }
            case 4:
                session.sendRaw(reader.bytes(Int(reader.byte() ?? 0)))
            case 5:
                session.channel.embeddedEventLoop.advanceTime(by: .seconds(Int64(reader.byte() ?? 0)))
            case 6:
                session.channel.isWritable.toggle()
                session.channel.pipeline.fireChannelWritabilityChanged()
            default:
                break
            }
            let answered = session.drainOutbound()
            precondition(answered <= maxOutboundPerStep, "one step made the session answer \(answered) bytes")
            precondition(session.mux.heldOutboundBytes <= maxHeldBytes, "session holds \(session.mux.heldOutboundBytes) bytes")
            if !session.channel.isActive { return }
        }
    }
}

/// Reads the fuzz input front to back; past the end it yields zeros (and nil for ops).
struct FuzzReader {
    private let input: [UInt8]
    private var index = 0
    init(_ input: [UInt8]) { self.input = input }

    mutating func byte() -> UInt8? {
        guard index < input.count else { return nil }
        defer { index += 1 }
        return input[index]
    }

    mutating func u16() -> UInt16 { UInt16(byte() ?? 0) << 8 | UInt16(byte() ?? 0) }
    mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    mutating func bytes(_ count: Int) -> [UInt8] {
        let n = min(count, input.count - index)
        defer { index += n }
        return Array(input[index..<(index + n)])
    }
}

/// One responder session as a node runs it, established by a scripted initiator with EgressAuth.
/// Public so that unit tests drive the same real session the fuzzer does.
public final class ResponderSessionHarness {
    public let channel: EmbeddedChannel
    public let mux: MuxHandler
    private var send: TransportCipher

    private init(channel: EmbeddedChannel, mux: MuxHandler, send: TransportCipher) {
        self.channel = channel
        self.mux = mux
        self.send = send
    }

    static let exitPolicy = ExitPolicy(configuration: ExitPolicyConfiguration(mode: .defaultDeny))

    public static func make() throws -> ResponderSessionHarness {
        let channel = EmbeddedChannel()
        let responder = Fixtures.responder
        let verifier = NIOLockedVerifier(EgressAuthVerifier(exit: responder.nodeID, admission: .anyAccount))
        let role = SessionRole.responder(identity: responder, payload: []) { peer, binding in
            let tlvs = try TLV.decode(peer.payload)
            guard let auth = tlvs.first(where: { $0.type == PayloadTLV.egressAuth }) else { return SessionAdmission() }
            return SessionAdmission(account: try verifier.verify(auth.value, initiator: peer.identityPublicKey, binding: binding))
        }
        let mux = MuxHandler(role: .server)
        let closed = channel.closeFuture
        mux.onEstablished = { event in
            var services: [any StreamService] = [PingService(), IPEchoService(remote: { nil })]
            if let account = event?.admission.account {
                services.append(EgressService(account: account, policy: exitPolicy, limits: EgressLimits(), observer: SilentEgressObserver(),
                                              resolver: Fixtures.resolver, budget: Fixtures.accountBudget, sessionClosed: closed))
            }
            mux.setServices(services)
        }
        try channel.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role))
        try channel.pipeline.syncOperations.addHandler(mux)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()

        var initiator = NoiseInitiator(identity: Fixtures.initiator, expectedResponder: responder.nodeID)
        try channel.writeInbound(lengthPrefixed(try initiator.message1()))
        guard var out = try channel.readOutbound(as: ByteBuffer.self), let length = out.readInteger(as: UInt16.self),
              let msg2 = out.readBytes(length: Int(length)) else { throw SessionError.handshake("no msg2") }
        _ = try initiator.readMessage2(msg2)
        let exitID = responder.nodeID
        let msg3 = try initiator.message3 { binding in
            let auth = try EgressAuthProof.build(account: Fixtures.initiator, exit: exitID, bindingHash: binding, now: WallClock.now())
            return TLV.encode([TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        try channel.writeInbound(lengthPrefixed(msg3))
        guard let keys = initiator.keys, mux.establishedEvent != nil else { throw SessionError.handshake("not established") }
        return ResponderSessionHarness(channel: channel, mux: mux, send: TransportCipher(key: keys.sendKey))
    }

    /// The session bytes that open peer stream `id`: SYN, then one data frame with the
    /// multistream header, the protocol line and `payload` (pipelined, as the dialer does).
    public static func streamOpening(id: UInt32, protocol name: String, then payload: [UInt8]) -> [UInt8] {
        var frame = ByteBuffer()
        YamuxFrameHeader(type: .windowUpdate, flags: [.syn], streamID: id, length: 0).encode(into: &frame)
        var body = ByteBuffer()
        for line in ["/multistream/1.0.0\n", name + "\n"] {
            body.writeBytes(UVarint.encode(UInt64(line.utf8.count)))
            body.writeString(line)
        }
        body.writeBytes(payload)
        YamuxFrameHeader(type: .data, flags: [], streamID: id, length: UInt32(body.readableBytes)).encode(into: &frame)
        frame.writeBuffer(&body)
        return Array(frame.readableBytesView)
    }

    private static func lengthPrefixed(_ message: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(UInt16(message.count))
        b.writeBytes(message)
        return b
    }

    public func sendData(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        sendRecord(.data(bytes))
    }

    public func sendRecord(_ record: TransportRecord) {
        guard channel.isActive, let frame = try? send.seal(record.encode()) else { return }
        sendRaw(frame)
    }

    public func sendRaw(_ bytes: [UInt8]) {
        guard channel.isActive, !bytes.isEmpty else { return }
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// Reads (and drops) what the session sent; returns the byte count.
    public func drainOutbound() -> Int {
        var total = 0
        while let out = try? channel.readOutbound(as: ByteBuffer.self) { total += out.readableBytes }
        return total
    }

    public func finish() {
        _ = try? channel.close().wait()
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}

/// The verifier's nonce memory behind a lock, as the node keeps it.
final class NIOLockedVerifier: @unchecked Sendable {
    private var verifier: EgressAuthVerifier
    private let lock = NSLock()
    init(_ verifier: EgressAuthVerifier) { self.verifier = verifier }

    func verify(_ bytes: [UInt8], initiator: [UInt8], binding: [UInt8]) throws -> AdmittedAccount {
        lock.lock()
        defer { lock.unlock() }
        return try verifier.verify(bytes, initiatorPublicKey: initiator, bindingHash: binding, now: WallClock.now())
    }
}

struct SilentEgressObserver: EgressObserver {
    func streamOpened(account: [UInt8]) {}
    func streamClosed(account: [UInt8]) {}
    func refused(account: [UInt8], reason: String) {}
    func openFailed(status: EgressOpenStatus) {}
    func bytes(account: [UInt8], up: Int, down: Int) {}
}

extension Fixtures {
    /// No name servers: names answer from the hosts table or fail at once, so fuzzing never sends
    /// a packet (and the policy, default-deny, refuses every destination anyway).
    static let resolver: StubResolver = {
        var configuration = StubResolverConfiguration(servers: [])
        configuration.hosts = HostsFile(entries: ["fuzz.example": [[127, 0, 0, 1]]])
        return StubResolver(configuration: configuration)
    }()
    static let accountBudget = AccountBudget(sessionsPerAccount: 1_000_000, streamsPerAccount: 1_000_000)
}

extension FuzzTarget {
    /// Whether the session target's harness really gets past authentication: a ping stream
    /// opened on it gets its 32 bytes echoed and an egress stream is accepted (the tests check
    /// this, so the target cannot silently decay into fuzzing a closed channel).
    public static func sessionHarnessReachesServices() -> (pingEchoed: Bool, egressNegotiated: Bool) {
        guard let session = try? ResponderSessionHarness.make() else { return (false, false) }
        defer { session.finish() }
        _ = session.drainOutbound()
        func open(_ id: UInt32, _ name: String, _ payload: [UInt8]) -> Int {
            session.sendData(ResponderSessionHarness.streamOpening(id: id, protocol: name, then: payload))
            return session.drainOutbound()
        }
        // Answers are encrypted; their size tells enough: the ping answer carries 32 more bytes
        // than the bare negotiation answer of the refused protocol.
        let refused = open(1, "/nope/1.0.0", [])
        let ping = open(3, "/ipfs/ping/1.0.0", [UInt8](repeating: 9, count: 32))
        let egress = open(5, EgressMessage.protocolID, [])
        return (ping > refused + 32, egress > 0 && session.channel.isActive)
    }
}
