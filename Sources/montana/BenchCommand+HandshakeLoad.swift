import ArgumentParser
import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Many clients opening full egress sessions against one running exit, as the client does:
/// each iteration is a fresh TCP connection, the preface (to the exit itself, or to a front naming
/// the exit), Noise_PQ XX with an account identity, EgressAuth in msg3, and one round trip on
/// `/montana/account/1.0.0` — a service the exit serves only on a session whose EgressAuth it
/// accepted — then close. Prints handshakes per second, latency (dial to accepted) and failures.
struct HandshakeLoadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handshake-load",
        abstract: "Full egress sessions (TCP + preface + Noise_PQ XX + EgressAuth accepted) against a running exit: handshakes/s, p50/p99 latency, failures.",
        discussion: """
        Each of --concurrency clients loops for --duration seconds: dial, handshake, ask the exit's \
        account service (answered only once the exit accepted the EgressAuth), close. The exit's \
        admission budgets apply as to anyone ([limits] handshakes_per_second, 200 by default; per /24 \
        network 50/s; per source 20 prefaces/s): spread clients over --sources loopback /24s and/or \
        raise the exit's limits to measure its CPU rather than its budgets. Accounts: the \
        subscription's bearer account (and pass) if it has one, else --account-key, else a fresh \
        account per client (an any-account exit admits them).
        """
    )

    /// Latency samples kept at most (8 MiB); later handshakes are counted but not sampled.
    static let maxSamples = 1 << 20
    /// Distinct failure texts kept; the rest are counted as "other".
    static let maxErrorKinds = 16
    /// How long attempts still open at the end of --duration may finish (they count as late).
    static let graceSeconds = 3.0

    @Option(help: "The subscription file or http:// URL (the alliance, and links to find members).")
    var subscription: String

    @Option(help: "The exit: host:port, its name, operator label or node id prefix (from the subscription's links or the directory).")
    var exit: String

    @Option(help: "Dial through this front (host:port, name or node id prefix) instead of straight to the exit.")
    var front: String?

    @Option(help: "Clients opening sessions at once (1-4096).")
    var concurrency = 16

    @Option(help: "Seconds to run (0.1-3600).")
    var duration: Double = 10

    @Option(help: "Spread clients over this many loopback source addresses 127.77.K.1, one /24 each (0-256; 0 lets the OS choose).")
    var sources = 0

    @Option(help: "An account key file (montana keygen account) used by every client.")
    var accountKey: String?

    @Option(help: "Event-loop threads of this load generator (1-64).")
    var threads = 1

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency \(concurrency): must be 1...4096") }
        guard duration >= 0.1 && duration <= 3600 else { throw ValidationError("--duration \(duration): must be 0.1...3600 seconds") }
        guard (0...256).contains(sources) else { throw ValidationError("--sources \(sources): must be 0...256") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads \(threads): must be 1...64") }
    }

    func run() async throws {
        let document: SubscriptionDocument
        do {
            let fetched = try await SubscriptionFetcher.fetch(url: subscription)
            document = try SubscriptionDocument.decode(fetched.body, source: subscription)
        } catch {
            throw ValidationError("--subscription \(subscription): \(error)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            try await load(document, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    private func load(_ document: SubscriptionDocument, group: MultiThreadedEventLoopGroup) async throws {
        var logger = Logger(label: "montana.bench.handshake-load")
        logger.logLevel = .critical
        let exitTarget = try await Self.find(exit, what: "--exit", in: document, loop: group.next(), logger: logger)
        let frontTarget = try await front.asyncMap { try await Self.find($0, what: "--front", in: document, loop: group.next(), logger: logger) }

        // Accounts: shared (bearer or key file) or one fresh account per client.
        var pass: [UInt8]?
        var shared: IdentityKey?
        if let seed = document.account?.bearerSeed {
            shared = try IdentityKey(seed: seed)
            pass = document.account?.pass?.signedBytes
        } else if let accountKey {
            do { shared = try KeyFile.loadIdentity(accountKey, kind: .account) } catch { throw ValidationError("--account-key \(accountKey): \(error)") }
            pass = document.account?.pass?.signedBytes
        }
        let accounts = try (0..<concurrency).map { _ in try shared ?? IdentityKey.generate() }
        let locals = try (0..<sources).map { try SocketAddress(ipAddress: "127.77.\($0).1", port: 0) }

        let run = LoadRun(deadline: .now() + .nanoseconds(Int64(duration * 1e9)))
        let started = DispatchTime.now().uptimeNanoseconds
        let finished = DispatchGroup()
        for i in 0..<concurrency {
            finished.enter()
            let client = LoadClient(loop: group.next(), exit: exitTarget, front: frontTarget, account: accounts[i], pass: pass,
                                    alliance: document.alliance.uuidBytes, local: locals.isEmpty ? nil : locals[i % locals.count],
                                    run: run, done: { run.clientDone(); finished.leave() })
            client.loop.execute { client.next() }
        }
        // Attempts still open at the deadline get a short grace; the rate counts only the window.
        let grace = duration + Self.graceSeconds
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                _ = finished.wait(timeout: .now() + grace)
                c.resume()
            }
        }
        var snapshot = run.snapshot()
        snapshot.unfinished = snapshot.unfinished + max(0, concurrency - run.clientsDone())
        let elapsed = min(duration, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        report(snapshot, elapsed: elapsed, exit: exitTarget, front: frontTarget, shared: shared != nil)
    }

    private func report(_ s: LoadRun.Snapshot, elapsed: Double, exit: RelayTarget, front: RelayTarget?, shared: Bool) {
        let sorted = s.latencies.sorted()
        func pct(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e6
        }
        let rate = Double(s.ok) / elapsed
        if json {
            let object: [String: Any] = [
                "exit": "\(exit.host):\(exit.port)", "front": front.map { "\($0.host):\($0.port)" } ?? NSNull(),
                "concurrency": concurrency, "sources": sources, "threads": threads, "accounts": shared ? "shared" : "one per client",
                "seconds": elapsed, "handshakes": s.ok, "failures": s.failed, "handshakes_per_second": rate,
                "late": s.late, "unfinished": s.unfinished,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": sorted.last.map { Double($0) / 1e6 } ?? 0,
                "errors": s.errors,
            ]
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        print("handshake load: \(concurrency) clients, \(String(format: "%.1f", elapsed)) s, exit \(exit.host):\(exit.port)"
              + (front.map { " via front \($0.host):\($0.port)" } ?? " (direct)")
              + ", sources \(sources == 0 ? "OS choice" : "\(sources) × /24"), accounts \(shared ? "shared" : "one per client")")
        print("each: TCP + preface + Noise_PQ XX + EgressAuth accepted (account service answered), then close")
        print(String(format: "accepted: %d (%.1f handshakes/s); failures: %d; after the window: %d finished late, %d unfinished",
                     s.ok, rate, s.failed, s.late, s.unfinished))
        print(String(format: "latency (dial to accepted): p50 %.2f ms, p99 %.2f ms, max %.2f ms", pct(0.5), pct(0.99),
                     sorted.last.map { Double($0) / 1e6 } ?? 0))
        for (text, n) in s.errors.sorted(by: { $0.value > $1.value }) { print("  \(n)× \(text)") }
    }

    /// A member named by host:port, node id prefix, name or label: the subscription's links
    /// first, then the alliance directory read through them (at most 30 s).
    static func find(_ name: String, what: String, in document: SubscriptionDocument, loop: any EventLoop,
                     logger: Logger) async throws -> RelayTarget {
        let lower = name.lowercased()
        func matches(host: String, port: Int, id: NodeID, labels: [String?]) -> Bool {
            if lower == "\(host):\(port)" { return true }
            if lower.count >= 8, id.hex.hasPrefix(lower) { return true }
            return labels.contains { $0?.lowercased() == lower }
        }
        for link in document.links where matches(host: link.host, port: Int(link.port), id: link.nodeID, labels: [link.label]) {
            return RelayTarget(nodeID: link.nodeID, kemPublicKey: link.kemPublicKey, host: link.host, port: Int(link.port))
        }
        let directory = try ClientDirectory(alliance: document.alliance, bootstrap: document.links, cachePath: nil, loop: loop,
                                            options: CircuitOptions(), logger: logger)
        let found = NIOLockedValueBox<RelayTarget?>(nil)
        directory.onUpdate = { members in
            if let m = members.first(where: { matches(host: $0.host, port: $0.port, id: $0.nodeID, labels: [$0.name, $0.operatorLabel]) }) {
                found.withLockedValue { $0 = m.target }
            }
        }
        directory.start()
        defer { directory.stop() }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let target = found.withLockedValue({ $0 }) { return target }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw ValidationError("\(what) \(name): no member with that host:port, name or node id prefix in the subscription's links or the directory (30 s)")
    }
}

/// The shared tally of one run (any thread).
final class LoadRun: Sendable {
    struct Snapshot {
        var ok = 0
        var failed = 0
        /// Attempts that ended after the deadline (not in `ok`/`failed`, not in the rate).
        var late = 0
        /// Attempts still open when the grace ran out.
        var unfinished = 0
        var done = 0
        var latencies: [UInt64] = []
        var errors: [String: Int] = [:]
    }

    let deadline: NIODeadline
    private let state = NIOLockedValueBox(Snapshot())

    init(deadline: NIODeadline) { self.deadline = deadline }

    func clientDone() { state.withLockedValue { $0.done += 1 } }
    func clientsDone() -> Int { state.withLockedValue { $0.done } }

    func record(_ result: Result<UInt64, any Error>) {
        let late = NIODeadline.now() > deadline
        state.withLockedValue { s in
            if late {
                s.late += 1
                return
            }
            switch result {
            case .success(let nanos):
                s.ok += 1
                if s.latencies.count < HandshakeLoadBench.maxSamples { s.latencies.append(nanos) }
            case .failure(let error):
                s.failed += 1
                var text = "\(error)"
                if text.utf8.count > 200 { text = String(text.prefix(200)) }
                if s.errors[text] == nil && s.errors.count >= HandshakeLoadBench.maxErrorKinds { text = "other" }
                s.errors[text, default: 0] += 1
            }
        }
    }

    func snapshot() -> Snapshot { state.withLockedValue { $0 } }
}

/// One client looping on its event loop: open an egress session, prove it was accepted, close.
final class LoadClient: @unchecked Sendable {
    let loop: any EventLoop
    private let exit: RelayTarget
    private let front: RelayTarget?
    private let account: IdentityKey
    private let pass: [UInt8]?
    private let alliance: [UInt8]
    private let local: SocketAddress?
    private let run: LoadRun
    private let done: @Sendable () -> Void

    init(loop: any EventLoop, exit: RelayTarget, front: RelayTarget?, account: IdentityKey, pass: [UInt8]?, alliance: [UInt8],
         local: SocketAddress?, run: LoadRun, done: @escaping @Sendable () -> Void) {
        self.loop = loop
        self.exit = exit
        self.front = front
        self.account = account
        self.pass = pass
        self.alliance = alliance
        self.local = local
        self.run = run
        self.done = done
    }

    func next() {
        guard NIODeadline.now() < run.deadline else {
            done()
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        open().flatMap { channel, mux in
            self.accepted(mux).always { _ in channel.close(promise: nil) }
        }
        .whenComplete { result in
            self.run.record(result.map { DispatchTime.now().uptimeNanoseconds - start })
            // A failing exit (refusing at once) must not turn this into a busy loop.
            if case .failure = result, NIODeadline.now() < self.run.deadline {
                self.loop.scheduleTask(in: .milliseconds(10)) { self.next() }
            } else {
                self.next()
            }
        }
    }

    /// The client's circuit (CircuitManager.open without the resumable SessionChannel): preface to
    /// the first hop naming the exit, Noise_PQ XX with the account, msg3 offering resumption and
    /// carrying EgressAuth bound to this handshake, yamux on top.
    private func open() -> EventLoopFuture<(any Channel, MuxHandler)> {
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: exit.nodeID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: .session))
        let account = self.account, exitID = exit.nodeID, pass = self.pass
        let role = SessionRole.initiator(identity: account, responder: exitID) { h in
            let auth = try EgressAuthProof.build(account: account, exit: exitID, bindingHash: h, now: WallClock.now(), signedPass: pass)
            return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(SessionCryptoHandler.featureResume)),
                               TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        let first = front ?? exit
        let established = loop.makePromise(of: Void.self)
        let muxBox = NIOLoopBoundBox<MuxHandler?>(nil, eventLoop: loop)
        let deadline = loop.scheduleTask(in: .seconds(15)) { established.fail(CircuitError.timedOut) }
        return CircuitDialer.connect(on: loop, host: first.host, port: first.port, hopKEMPublicKey: first.kemPublicKey,
                                     message: .hop(hop), timeout: .seconds(15), localAddress: local) { channel in
            let mux = MuxHandler(role: .client)
            mux.onEstablished = { event in
                if event != nil { established.succeed() } else { established.fail(CircuitError.carrierClosed) }
            }
            muxBox.value = mux
            try channel.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role, onFailure: { established.fail($0) }))
            try channel.pipeline.syncOperations.addHandler(mux)
            channel.closeFuture.whenComplete { _ in established.fail(CircuitError.carrierClosed) }
        }
        .flatMap { channel, _ in
            established.futureResult.map { (channel, muxBox.value!) }.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
        .always { _ in deadline.cancel() }
    }

    /// One round trip on the account service: the exit serves it only on a session whose
    /// EgressAuth it accepted (a refused proof closes the connection instead).
    private func accepted(_ mux: MuxHandler) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        guard let stream = mux.openStream(protocol: AccountStatusService.protocolID, negotiated: { ok in
            if !ok { promise.fail(LoadError("the exit does not serve the account service on this session (EgressAuth not accepted)")) }
        }) else {
            return loop.makeFailedFuture(LoadError("no stream could be opened on the session"))
        }
        var decoder = LengthPrefixedDecoder(maxMessageSize: 256)
        stream.onData = { buffer in
            decoder.append(buffer)
            stream.consumed(buffer.readableBytes)
            if let message = try? decoder.nextMessage(), (try? AccountStatus.decode(Array(message.readableBytesView))) != nil {
                promise.succeed(())
            }
        }
        stream.onEnd = { _ in promise.fail(LoadError("the session ended before the exit answered (EgressAuth refused?)")) }
        stream.startReading()
        let timer = loop.scheduleTask(in: .seconds(15)) { promise.fail(LoadError("no answer from the exit's account service within 15 s")) }
        return promise.futureResult.always { _ in timer.cancel() }
    }
}

struct LoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
