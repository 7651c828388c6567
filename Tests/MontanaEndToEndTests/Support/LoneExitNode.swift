import Foundation
import MontanaCrypto
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// One `montana node --config` process (front + exit, any-account admission, loopback re-opened
/// with `allow_private`) whose config the test writes, for limits the demo has no option for.
/// A session reaches it directly (a preface naming the node itself). `stop()` ends it by PID.
final class LoneExitNode: @unchecked Sendable {
    /// How long the node may take to listen (key loading and SQLite on a loaded 2-core machine).
    static let startTimeout: TimeInterval = 30

    let directory: String
    let process: ChildProcess
    let city: DemoStatus.City

    /// Starts a node; `extraConfig` is appended to the generated `node.toml` (e.g. a `[limits]`
    /// or `[dns]` section).
    static func start(name: String, extraConfig: String = "") throws -> LoneExitNode {
        let montana = try Paths.montana()
        reapOrphans()
        let directory = try Paths.makeTemporaryDirectory("\(marker)\(name)")
        let identity = try IdentityKey.generate()
        let kem = try KEMKey.generate()
        try KeyFile(kind: .nodeIdentity, seed: identity.seed).write(to: (directory as NSString).appendingPathComponent("identity.key"))
        try KeyFile(kind: .nodeKEM, seed: kem.seed).write(to: (directory as NSString).appendingPathComponent("kem.key"))
        let transit = try Net.freePort(), admin = try Net.freePort()
        let config = """
        [node]
        identity_key = "identity.key"
        kem_key = "kem.key"
        roles = ["front", "exit"]
        country = "DE"

        [listen]
        transit = "127.0.0.1:\(transit)"
        admin = "127.0.0.1:\(admin)"

        [log]
        level = "info"

        [exit]
        admission = "any-account"
        policy = "default-allow"
        allow = []
        # The test's destinations listen on loopback.
        allow_private = ["127.0.0.0/8"]

        \(extraConfig)
        """
        let configPath = (directory as NSString).appendingPathComponent("node.toml")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let process: ChildProcess
        do {
            process = try ChildProcess(name: name, executable: montana, arguments: ["node", "--config", configPath], logDirectory: directory)
        } catch {
            Paths.removeTemporaryDirectory(directory)
            throw error
        }
        let city = DemoStatus.City(name: name, nodeID: identity.nodeID.hex, kemPK: Hex.encode(kem.publicKey),
                                   identityPK: Hex.encode(identity.publicKey), roles: ["front", "exit"], country: "DE",
                                   transit: .init(host: "127.0.0.1", port: transit), admin: .init(host: "127.0.0.1", port: admin),
                                   pid: process.pid, config: configPath, log: process.stderrPath, exitAdmission: "any-account",
                                   exitPolicy: "default-allow")
        let node = LoneExitNode(directory: directory, process: process, city: city)
        let up = Net.waitForListener(admin, timeout: startTimeout, alive: { process.isRunning })
            && Net.waitForListener(transit, timeout: startTimeout, alive: { process.isRunning })
        guard up else {
            let tail = process.outputTail()
            node.stop()
            throw E2EError("montana node \(name) did not listen on \(transit)/\(admin) within \(startTimeout) s:\n\(tail)")
        }
        return node
    }

    /// Directory prefix of every lone node; the test process's pid follows the name.
    private static let marker = "montana-e2e-lone-"

    /// Stops lone nodes left by an earlier test run that crashed before its tearDown: their
    /// config path carries that run's pid, which is gone.
    static func reapOrphans() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var orphans: [Int32] = []
        for pid in entries.compactMap(Int32.init) {
            let cmd = ProcessKiller.commandLine(pid)
            guard cmd.contains(" node "), let range = cmd.range(of: marker) else { continue }
            // montana-e2e-lone-<name>-<pid>-<uuid>: the owner is the number before the uuid.
            let parts = cmd[range.upperBound...].prefix { $0 != "/" }.split(separator: "-")
            guard parts.count >= 2, let owner = Int32(parts[parts.count - 2]) else { continue }
            if owner != getpid() && !ProcessKiller.isAlive(owner) { orphans.append(pid) }
        }
        ProcessKiller.stop(orphans, expecting: marker, grace: 5)
    }

    private init(directory: String, process: ChildProcess, city: DemoStatus.City) {
        self.directory = directory
        self.process = process
        self.city = city
    }

    /// SIGTERM, SIGKILL after 5 s; removes the directory. Safe to call twice.
    func stop() {
        process.stop(grace: 5)
        Paths.removeTemporaryDirectory(directory)
    }

    func diagnostics(_ count: Int = 3000) -> String {
        "\(city.name) pid \(process.pid) \(process.isRunning ? "running" : "is GONE")\n\(process.outputTail(count))"
    }
}

/// What came back for one EgressOpen.
struct EgressAck: Sendable {
    let status: EgressOpenStatus
    /// Seconds from sending the EgressOpen to its EgressOpenAck.
    let elapsed: TimeInterval
    /// When the ack arrived.
    let at: Date
}

/// One `/montana/egress/1.0.0` stream of an `EgressProbe`. Its state lives on the session's loop.
final class EgressStreamHandle: @unchecked Sendable {
    let ack: EventLoopFuture<EgressAck>
    /// How the stream ended (the exit's reset, its FIN, or the session closing) and when.
    let end: EventLoopFuture<(MuxStreamEnd, Date)>
    fileprivate let ackPromise: EventLoopPromise<EgressAck>
    fileprivate let endPromise: EventLoopPromise<(MuxStreamEnd, Date)>
    fileprivate let loop: any EventLoop
    fileprivate var stream: MuxStream?
    fileprivate var decoder = LengthPrefixedDecoder()
    fileprivate var sentAt = Date()
    fileprivate var hasEndedOnLoop = false

    fileprivate init(loop: any EventLoop) {
        self.loop = loop
        ackPromise = loop.makePromise()
        endPromise = loop.makePromise()
        ack = ackPromise.futureResult
        end = endPromise.futureResult
    }

    /// Resets the stream (the exit tears its side down at once).
    func reset() {
        loop.execute { self.stream?.reset() }
    }

    /// One EgressKeepalive on the stream.
    func sendKeepalive() {
        loop.execute {
            guard let bytes = try? EgressMessage.keepalive.encode() else { return }
            self.stream?.write(LengthPrefixedDecoder.frame(bytes))
        }
    }

    fileprivate func received(_ buffer: ByteBuffer) {
        stream?.consumed(buffer.readableBytes)
        decoder.append(buffer)
        while case let raw? = try? decoder.nextMessage() {
            guard let message = try? EgressMessage.decode(Array(raw.readableBytesView)) else { continue }
            if case .openAck(_, let status) = message {
                let now = Date()
                ackPromise.succeed(EgressAck(status: status, elapsed: now.timeIntervalSince(sentAt), at: now))
            }
        }
    }

    /// Whether the stream has ended by now (asked on the session's loop, so it is exact).
    func hasEnded() throws -> Bool {
        try loop.submit { self.hasEndedOnLoop }.wait()
    }

    fileprivate func ended(_ how: MuxStreamEnd) {
        hasEndedOnLoop = true
        ackPromise.fail(E2EError("the stream ended (\(how)) before an EgressOpenAck"))
        endPromise.succeed((how, Date()))
    }
}

/// A session built with the product's libraries straight to an exit (the preface names the exit
/// itself), proving a fresh account with EgressAuth, for opening egress streams by hand.
final class EgressProbe: @unchecked Sendable {
    /// The handshake and EgressAuth take well under a second; 20 s covers a loaded machine.
    static let establishTimeout: TimeInterval = 20

    let channel: any Channel
    private let mux: NIOLoopBoundBox<MuxHandler?>

    private init(channel: any Channel, mux: NIOLoopBoundBox<MuxHandler?>) {
        self.channel = channel
        self.mux = mux
    }

    static func open(on loop: any EventLoop, exit: DemoStatus.City, account: IdentityKey) throws -> EgressProbe {
        guard let kem = Hex.decode(exit.kemPK), let exitID = NodeID(hex: exit.nodeID) else {
            throw E2EError("bad keys for \(exit.name)")
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: exitID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), purpose: .session))
        let role = SessionRole.initiator(identity: account, responder: exitID) { h in
            let auth = try EgressAuthProof.build(account: account, exit: exitID, bindingHash: h, now: WallClock.now())
            return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0))),
                               TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        let established = loop.makePromise(of: SessionEstablished?.self)
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: MuxHandler.self, eventLoop: loop)
        let connected = CircuitDialer.connect(on: loop, host: exit.transit.host, port: exit.transit.port, hopKEMPublicKey: kem,
                                              message: .hop(hop), timeout: .seconds(10)) { channel in
            let mux = MuxHandler(role: .client)
            mux.onEstablished = { event in established.succeed(event) }
            box.value = mux
            try channel.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role, onFailure: { _ in established.succeed(nil) }))
            try channel.pipeline.syncOperations.addHandler(mux)
        }
        connected.whenFailure { _ in established.succeed(nil) }
        let (channel, _) = try awaitFuture(connected, timeout: establishTimeout, what: "the circuit to \(exit.name)")
        let probe = EgressProbe(channel: channel, mux: box)
        guard try awaitFuture(established.futureResult, timeout: establishTimeout, what: "the session with \(exit.name)") != nil else {
            probe.close()
            throw E2EError("the session with \(exit.name) was not established")
        }
        return probe
    }

    /// Opens a stream and pipelines an EgressOpen (TCP unless `transport` says otherwise) behind
    /// the protocol line. Returns at once; wait on the handle's `ack` and `end`.
    func openEgress(_ address: EgressAddress, port: Int, transport: EgressTransport = .tcp) -> EgressStreamHandle {
        let loop = channel.eventLoop
        let handle = EgressStreamHandle(loop: loop)
        let box = mux
        loop.execute {
            guard let mux = box.value else { return handle.ended(.sessionClosed) }
            let stream = mux.openStream(protocol: EgressMessage.protocolID) { accepted in
                if !accepted { handle.ackPromise.fail(E2EError("the exit refused \(EgressMessage.protocolID)")) }
            }
            guard let stream else { return handle.ended(.sessionClosed) }
            handle.stream = stream
            stream.onData = { handle.received($0) }
            stream.onEnd = { how in
                handle.ended(how)
                if how != .remoteFinished { handle.stream = nil }
            }
            let open = EgressOpen(streamID: stream.id, transport: transport, address: address, port: UInt16(clamping: port))
            guard let body = try? EgressMessage.open(open).encode() else {
                handle.ackPromise.fail(E2EError("EgressOpen did not encode"))
                return
            }
            handle.sentAt = Date()
            stream.write(LengthPrefixedDecoder.frame(body))
        }
        return handle
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// A TCP listener on 127.0.0.1 that accepts every connection and holds it open, sending nothing:
/// a destination that never talks. Counts accepted and closed connections.
final class HoldingListener: @unchecked Sendable {
    let port: Int
    private let channel: any Channel
    private let counts: ConnectionCounts

    /// The kernel's accept queue: above the 257 connects the stream-limit test makes at once.
    static let backlog: Int32 = 1024

    init(group: any EventLoopGroup) throws {
        let counts = ConnectionCounts()
        self.counts = counts
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: Self.backlog)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(CountingHandler(counts: counts)) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        port = channel.localAddress?.port ?? 0
    }

    var accepted: Int { counts.accepted }
    var closed: Int { counts.closed }
    var open: Int { counts.accepted - counts.closed }

    func close() {
        channel.close(promise: nil)
    }
}

private final class ConnectionCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var acceptedCount = 0
    private var closedCount = 0

    var accepted: Int { lock.lock(); defer { lock.unlock() }; return acceptedCount }
    var closed: Int { lock.lock(); defer { lock.unlock() }; return closedCount }
    func accept() { lock.lock(); acceptedCount += 1; lock.unlock() }
    func close() { lock.lock(); closedCount += 1; lock.unlock() }
}

private final class CountingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let counts: ConnectionCounts

    init(counts: ConnectionCounts) {
        self.counts = counts
    }

    func channelActive(context: ChannelHandlerContext) {
        counts.accept()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        counts.close()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The exit half-closed: close our side too, so the connection ends.
        if let e = event as? ChannelEvent, e == .inputClosed { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A UDP socket on 127.0.0.1 that is never read: a DNS server that swallows every query.
final class SwallowingDNSServer {
    let port: Int
    private var fd: Int32

    init() throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket(): errno \(errno)") }
        var addr = Net.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = fd
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(bound, $0, len) == 0 && getsockname(bound, $0, &len) == 0 }
        }
        guard ok else {
            Glibc.close(fd)
            throw E2EError("bind(): errno \(errno)")
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}
