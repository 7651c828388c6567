import Foundation
import MontanaTransport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// The front's relay with real sockets on loopback: client → relay (SpliceHandler pair, moving to
/// the kernel's splice(2) after a threshold) → an echo server that half-closes after its input ends.
final class KernelSpliceTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? group.syncShutdownGracefully()
    }

    /// Echoes what it reads; closes its output once the input ended.
    private final class Echo: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.write(data, promise: nil)
        }
        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? ChannelEvent, e == .inputClosed { context.close(mode: .output, promise: nil) }
        }
    }

    /// Collects everything until the peer's EOF.
    private final class Collect: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var received = ByteBuffer()
        let done: EventLoopPromise<ByteBuffer>
        init(done: EventLoopPromise<ByteBuffer>) { self.done = done }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var b = unwrapInboundIn(data)
            received.writeBuffer(&b)
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? ChannelEvent, e == .inputClosed { done.succeed(received) }
        }
        func channelInactive(context: ChannelHandlerContext) { done.succeed(received) }
    }

    private struct Counters {
        var kernelBytes = 0
        var ended = 0
        var handedOff = 0
    }

    private func startEcho() throws -> Channel {
        try ServerBootstrap(group: group)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { $0.pipeline.addHandler(Echo()) }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    private func startRelay(to target: Int, splicer: KernelSplicer?, threshold: Int, counters: NIOLockedValueBox<Counters>) throws -> Channel {
        try ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMapThrowing { outbound in
                        let kernel = splicer.map { splicer in
                            KernelHandoff(splicer: splicer, threshold: threshold,
                                          handedOff: { counters.withLockedValue { $0.handedOff += 1 } },
                                          onBytes: { n in counters.withLockedValue { $0.kernelBytes += n } },
                                          onEnd: { counters.withLockedValue { $0.ended += 1 } })
                        }
                        let (a, b) = SpliceHandler.pair(kernel: kernel)
                        try outbound.pipeline.syncOperations.addHandler(b)
                        try inbound.pipeline.syncOperations.addHandler(a)
                    }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// A promise that fails after 30 s, so a relay that loses the end of a stream fails the test
    /// instead of hanging it.
    private func boundedPromise() -> EventLoopPromise<ByteBuffer> {
        let loop = group.next()
        let done = loop.makePromise(of: ByteBuffer.self)
        loop.scheduleTask(in: .seconds(30)) { done.fail(ChannelError.connectTimeout(.seconds(30))) }
        return done
    }

    /// Sends `payload` through the relay, half-closes, and returns what came back before EOF.
    private func roundTrip(_ payload: [UInt8], port: Int) throws -> EventLoopFuture<ByteBuffer> {
        let done = boundedPromise()
        let client = try ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { $0.pipeline.addHandler(Collect(done: done)) }
            .connect(host: "127.0.0.1", port: port).wait()
        var offset = 0
        while offset < payload.count {
            let end = min(offset + 256 * 1024, payload.count)
            client.write(ByteBuffer(bytes: payload[offset..<end]), promise: nil)
            offset = end
        }
        client.flush()
        client.close(mode: .output, promise: nil)
        return done.futureResult.always { _ in client.close(promise: nil) }
    }

    /// The kernel relay, or a loud skip where splice(2)/epoll do not exist (not Linux).
    private func makeSplicer(maxPairs: Int = KernelSplicer.maxPairs) throws -> KernelSplicer {
        guard let splicer = KernelSplicer.make(maxPairs: maxPairs) else {
            print("KernelSpliceTests: SKIPPED LOUDLY — splice(2)/epoll not available on this system")
            throw XCTSkip("!!! kernel relay not available: splice(2)/epoll missing on this system")
        }
        return splicer
    }

    private func randomBytes(_ count: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<count / 8).flatMap { _ in withUnsafeBytes(of: g.next()) { Array($0) } }
    }

    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && Date() < deadline { usleep(20_000) }
    }

    func testBulkCircuitMovesToTheKernelAndLosesNothing() throws {
        let splicer = try makeSplicer()
        defer { splicer.shutdown() }
        let counters = NIOLockedValueBox(Counters())
        let echo = try startEcho()
        let relay = try startRelay(to: echo.localAddress!.port!, splicer: splicer, threshold: 64 * 1024, counters: counters)
        defer { try? relay.close().wait(); try? echo.close().wait() }
        let payload = randomBytes(16 * 1024 * 1024)
        let back = try roundTrip(payload, port: relay.localAddress!.port!).wait()
        XCTAssertEqual(back.readableBytes, payload.count)
        XCTAssertTrue(Array(back.readableBytesView) == payload, "the echo differs from what was sent")
        let c = counters.withLockedValue { $0 }
        XCTAssertEqual(c.handedOff, 1, "the circuit never moved to the kernel")
        XCTAssertGreaterThan(c.kernelBytes, payload.count, "most of the 32 MiB should move in the kernel")
        waitUntil(5) { counters.withLockedValue { $0.ended } == 1 && splicer.activePairs == 0 }
        XCTAssertEqual(counters.withLockedValue { $0.ended }, 1, "the kernel relay did not end the circuit after both half-closes")
        XCTAssertEqual(splicer.activePairs, 0)
    }

    func testCircuitsPastTheBoundStayInUserspace() throws {
        let splicer = try makeSplicer(maxPairs: 1)
        defer { splicer.shutdown() }
        let counters = NIOLockedValueBox(Counters())
        let echo = try startEcho()
        let relay = try startRelay(to: echo.localAddress!.port!, splicer: splicer, threshold: 64 * 1024, counters: counters)
        defer { try? relay.close().wait(); try? echo.close().wait() }
        // The first circuit takes the only kernel slot and stays open.
        let (first, _) = try openIdle(port: relay.localAddress!.port!)
        defer { first.close(promise: nil) }
        waitUntil(5) { splicer.activePairs == 1 }
        XCTAssertEqual(splicer.activePairs, 1)
        // Past the bound, bulk circuits are relayed in userspace, byte for byte.
        for _ in 0..<2 {
            let payload = randomBytes(4 * 1024 * 1024)
            let back = try roundTrip(payload, port: relay.localAddress!.port!).wait()
            XCTAssertTrue(Array(back.readableBytesView) == payload, "a userspace circuit lost or reordered bytes")
        }
        XCTAssertEqual(counters.withLockedValue { $0.handedOff }, 1, "a circuit past maxPairs = 1 moved to the kernel")
        XCTAssertEqual(splicer.activePairs, 1)
    }

    /// A client that sent 1 MiB (past the threshold) and keeps its connection open.
    private func openIdle(port: Int) throws -> (Channel, EventLoopFuture<ByteBuffer>) {
        let done = boundedPromise()
        let client = try ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { $0.pipeline.addHandler(Collect(done: done)) }
            .connect(host: "127.0.0.1", port: port).wait()
        try client.writeAndFlush(ByteBuffer(bytes: randomBytes(1024 * 1024))).wait()
        return (client, done.futureResult)
    }

    func testShutdownClosesKernelRelayedCircuits() throws {
        let splicer = try makeSplicer()
        let counters = NIOLockedValueBox(Counters())
        let echo = try startEcho()
        let relay = try startRelay(to: echo.localAddress!.port!, splicer: splicer, threshold: 64 * 1024, counters: counters)
        defer { try? relay.close().wait(); try? echo.close().wait() }
        // The client sends 1 MiB and never half-closes: the circuit stays open in the kernel.
        let (client, ended) = try openIdle(port: relay.localAddress!.port!)
        defer { client.close(promise: nil) }
        waitUntil(5) { splicer.activePairs == 1 }
        XCTAssertEqual(splicer.activePairs, 1)
        splicer.shutdown()
        // The client sees its connection end instead of hanging.
        let back = try ended.wait()
        XCTAssertLessThanOrEqual(back.readableBytes, 1024 * 1024)
        waitUntil(5) { counters.withLockedValue { $0.ended } == 1 }
        XCTAssertEqual(counters.withLockedValue { $0.ended }, 1)
        XCTAssertEqual(splicer.activePairs, 0)
    }
}
