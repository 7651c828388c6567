import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// 1,000 app connections open at the same time through one exit (issue: performance). An exit
/// takes 256 streams per session (PROTOCOL.md 7.4), so the client must spread them over more
/// sessions to the same exit (or queue them), never fail them. The destination holds every
/// answer until all 1,000 requests are in, so the test fails unless all are open at once.
final class ManyStreamsTests: XCTestCase {
    private let connections = 1000
    private let responseBytes = 100 * 1024
    private var demo: DemoHarness?
    private var gate: GateServer?

    override func tearDown() {
        demo?.stop()
        demo = nil
        gate?.stop()
        gate = nil
        super.tearDown()
    }

    func test_aThousandConcurrentConnectionsThroughOneExitAllSucceed() throws {
        let demo = try DemoHarness.start()
        self.demo = demo
        // The exit's egress connections, read when the destination holds all 1,000 requests
        // (before it answers any): every one of them is open at the exit then.
        let exitCity = try demo.status.exit(country: "DE")
        let exitStatus = "http://\(exitCity.admin.host):\(exitCity.admin.port)/status"
        let atFull = NIOLockedValueBox<EgressConnections?>(nil)
        let gate = try GateServer.start(releaseAt: connections, bodyBytes: responseBytes, deadline: 90) {
            let sample = EgressConnections.read(exitStatus)
            atFull.withLockedValue { $0 = sample }
        }
        self.gate = gate

        // The exit's session first (its handshake is not what is measured).
        XCTAssertTrue(poll(timeout: 60, interval: 1) {
            (try? demo.curlSOCKS("\(demo.siteURL)/", user: "country-de", extra: ["--fail"], timeout: 10))?.succeeded ?? false
        }, "berlin works\n\(demo.diagnostics())")

        // curl runs at most 300 transfers at once (`--parallel-max`), so 4 curls of 250 each.
        let curls = 4, each = connections / curls
        let results = NIOLockedValueBox<[CurlResult]>([])
        let started = Date()
        let group = DispatchGroup()
        // Threads of their own: concurrentPerform would run only as many curls as there are cores.
        for c in 0..<curls { group.enter(); Thread.detachNewThread { defer { group.leave() }
            let config = (demo.directory as NSString).appendingPathComponent("many-\(c).curl")
            let lines = (0..<each).map { "url = \"http://127.0.0.1:\(gate.port)/\(c * each + $0)\"\noutput = \"/dev/null\"\n" }
            do {
                try lines.joined().write(toFile: config, atomically: true, encoding: .utf8)
                let result = try Curl.run(Curl.socks(demo.socksPort, user: "country-de")
                    + ["-Z", "--parallel-max", "\(each)", "--parallel-immediate", "-K", config,
                       "-w", "%{http_code} %{size_download}\\n"], timeout: 150)
                results.withLockedValue { $0.append(result) }
            } catch {
                XCTFail("curl \(c): \(error)")
            }
        } }
        group.wait()
        let result = results.withLockedValue { $0 }
        let took = Date().timeIntervalSince(started)
        let answers = result.flatMap { $0.stdoutText.split(separator: "\n") }
        let complete = answers.filter { $0 == "200 \(responseBytes)" }.count
        print(String(format: "many streams: %d of %d connections complete (%d B each) in %.2f s; the destination saw %d open at once",
                     complete, connections, responseBytes, took, gate.peakWaiting))
        XCTAssertEqual(gate.peakWaiting, connections, "all \(connections) requests reached the destination at the same time")
        XCTAssertEqual(complete, connections, "every connection completes: \(answers.filter { $0 != "200 \(responseBytes)" }.prefix(5))\n"
                       + "curl exits \(result.map(\.exitCode)) \(result.map { $0.stderr.suffix(300) })\n\(demo.diagnostics())")

        // Past `[limits] egress_small_buffers_after` (64) open egress connections, new ones read
        // into at most 8 KiB (the exit's memory with 1,000 open), and every one is counted out
        // again when it closes.
        let full = try XCTUnwrap(atFull.withLockedValue { $0 }, "the exit's /status answered while the destination held every request")
        XCTAssertGreaterThanOrEqual(full.open, connections, "the exit had every egress connection open at once: \(full)")
        XCTAssertEqual(full.nextMax, 8 * 1024, "with \(full.open) open, a new connection reads into 8 KiB at most: \(full)")
        XCTAssertTrue(poll(timeout: 20, interval: 0.5) {
            (EgressConnections.read(exitStatus)?.open ?? -1) == 0
        }, "the exit counts every closed egress connection out: \(String(describing: EgressConnections.read(exitStatus)))")
        XCTAssertEqual(EgressConnections.read(exitStatus)?.nextMax, 64 * 1024, "with none open, buffers may grow to 64 KiB again")

        // The client spread the streams over several sessions to the one exit.
        let circuits = try demo.clientStatusCircuits()
        let toBerlin = circuits.filter { ($0["exit_country"] as? String) == "DE" }
        XCTAssertGreaterThanOrEqual(toBerlin.count, 1, "\(circuits)")
        let opened = toBerlin.compactMap { $0["streams_opened"] as? Int }.reduce(0, +)
        XCTAssertGreaterThanOrEqual(opened, connections, "the sessions to berlin opened the \(connections) streams: \(toBerlin)")
    }
}

/// An exit's `/status` `egress_connections`: open now, and the largest buffer a new one reads into.
struct EgressConnections: Equatable {
    var open: Int
    var nextMax: Int

    static func read(_ url: String) -> EgressConnections? {
        guard let result = try? Curl.get(url), result.succeeded,
              let doc = try? JSONSerialization.jsonObject(with: result.stdout) as? [String: Any],
              let egress = doc["egress_connections"] as? [String: Any],
              let open = egress["open"] as? Int, let nextMax = egress["next_buffer_max_bytes"] as? Int else { return nil }
        return EgressConnections(open: open, nextMax: nextMax)
    }
}

/// An HTTP/1.1 server that reads each request and holds every answer until `releaseAt` requests
/// wait at once (or `deadline` seconds pass), then calls `beforeRelease` (once) and answers each
/// with `bodyBytes` bytes.
final class GateServer: @unchecked Sendable {
    let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var held: [any Channel] = []
        var released = false
        var releasing = false
        var peak = 0
    }

    var peakWaiting: Int { state.withLockedValue { $0.peak } }

    static func start(releaseAt: Int, bodyBytes: Int, deadline: TimeInterval,
                      beforeRelease: (@Sendable () -> Void)? = nil) throws -> GateServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = NIOLockedValueBox(State())
        let body = [UInt8](repeating: 0x61, count: bodyBytes)
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(bodyBytes)\r\nConnection: close\r\n\r\n".utf8)
        @Sendable func answer(_ channel: any Channel) {
            channel.eventLoop.execute {
                var buffer = channel.allocator.buffer(capacity: head.count + body.count)
                buffer.writeBytes(head)
                buffer.writeBytes(body)
                channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            }
        }
        @Sendable func releaseAll() {
            let first = state.withLockedValue { s -> Bool in
                defer { s.releasing = true }
                return !s.releasing
            }
            if first { beforeRelease?() }
            let held = state.withLockedValue { s -> [any Channel] in
                s.released = true
                defer { s.held = [] }
                return s.held
            }
            held.forEach(answer)
        }
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(GateHandler { channel in
                        let (now, release) = state.withLockedValue { s -> (Bool, Bool) in
                            if s.released { return (true, false) }
                            s.held.append(channel)
                            s.peak = max(s.peak, s.held.count)
                            return (false, s.held.count >= releaseAt)
                        }
                        if now { answer(channel) }
                        if release { releaseAll() }
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        group.next().scheduleTask(in: .seconds(Int64(deadline))) { releaseAll() }
        return GateServer(port: channel.localAddress!.port!, group: group, channel: channel, state: state)
    }

    private init(port: Int, group: MultiThreadedEventLoopGroup, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.group = group
        self.channel = channel
        self.state = state
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Calls `onRequest` once, when a whole request head (up to the blank line) has arrived.
private final class GateHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var seen: [UInt8] = []
    private var done = false
    private let onRequest: @Sendable (any Channel) -> Void

    init(onRequest: @escaping @Sendable (any Channel) -> Void) { self.onRequest = onRequest }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        seen += unwrapInboundIn(data).readableBytesView
        guard seen.count <= 16 * 1024 else { return context.close(promise: nil) }
        if seen.suffix(4) == [13, 10, 13, 10] || String(decoding: seen, as: UTF8.self).contains("\r\n\r\n") {
            done = true
            onRequest(context.channel)
        }
    }
}
