import MontanaTransport
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import XCTest

/// T2's bounds (PROTOCOL.md 2.3), each pushed past on a real loopback listener set up by
/// `WebSocketCarrierServer` (plain HTTP, as behind a CDN): the 8 KiB request head, the upgrade
/// timeout, the 64 KiB frame; and the bridge's fragmentation of large writes, pings and pongs.
final class WebSocketCarrierBoundsTests: XCTestCase {
    static let path = "/ws-abcdefghijklmnopqrstuv"
    private var group: MultiThreadedEventLoopGroup!
    private var server: (any Channel)?

    override func setUp() {
        super.setUp()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? server?.close().wait()
        try? group.syncShutdownGracefully()
        super.tearDown()
    }

    /// Bytes a carrier delivered (after the upgrade), shared with the test thread.
    final class Received: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = NIOLockedValueBox(0)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let n = unwrapInboundIn(data).readableBytes
            bytes.withLockedValue { $0 += n }
            context.read()
        }
        func handlerAdded(context: ChannelHandlerContext) { context.read() }
    }

    private func startServer(upgradeTimeout: TimeAmount = WebSocketCarrier.upgradeTimeout, received: Received) throws -> Int {
        let server = try ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try WebSocketCarrierServer.configure(channel, path: Self.path, tls: nil, upgradeTimeout: upgradeTimeout) { channel, _ in
                        try channel.pipeline.syncOperations.addHandler(received)
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        self.server = server
        return server.localAddress!.port!
    }

    /// A raw TCP client: everything the server sends, and whether it closed.
    final class Raw: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let text = NIOLockedValueBox("")
        let closed = NIOLockedValueBox(false)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let s = String(buffer: unwrapInboundIn(data))
            text.withLockedValue { $0 += s }
        }
        func channelInactive(context: ChannelHandlerContext) { closed.withLockedValue { $0 = true } }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    private func connect(_ port: Int) throws -> (any Channel, Raw) {
        let raw = Raw()
        let channel = try ClientBootstrap(group: group).channelInitializer { ch in
            ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(raw) }
        }.connect(host: "127.0.0.1", port: port).wait()
        return (channel, raw)
    }

    private func send(_ channel: any Channel, _ bytes: [UInt8]) throws {
        try channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).wait()
    }

    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }

    private func upgradeRequest(path: String = WebSocketCarrierBoundsTests.path, extra: String = "") -> [UInt8] {
        Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extra)\r\n".utf8)
    }

    /// A masked binary frame header for `length` bytes (client to server).
    private func frame(length: Int) -> [UInt8] {
        var out: [UInt8] = [0x82]
        if length < 126 { out.append(0x80 | UInt8(length)) }
        else if length <= 0xffff { out += [0x80 | 126, UInt8(length >> 8), UInt8(length & 0xff)] }
        else { out.append(0x80 | 127); for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((length >> shift) & 0xff)) } }
        out += [0, 0, 0, 0] // zero mask: payload as is
        return out + [UInt8](repeating: 0x41, count: length)
    }

    func test_aRequestHeadOver8KiBIsClosedAndOneUnderIsAnswered() throws {
        let port = try startServer(received: Received())
        let (ok, okRaw) = try connect(port)
        try send(ok, Array("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \(String(repeating: "a", count: 7000))\r\n\r\n".utf8))
        XCTAssertTrue(waitUntil(5) { okRaw.closed.withLockedValue { $0 } })
        XCTAssertTrue(okRaw.text.withLockedValue { $0 }.hasPrefix("HTTP/1.1 200"), okRaw.text.withLockedValue { $0 })

        let (big, bigRaw) = try connect(port)
        try send(big, Array("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \(String(repeating: "a", count: WebSocketCarrier.maxHeadBytes + 100))".utf8))
        XCTAssertTrue(waitUntil(5) { bigRaw.closed.withLockedValue { $0 } }, "closed past 8 KiB of head")
        XCTAssertEqual(bigRaw.text.withLockedValue { $0 }, "", "no answer at all")
    }

    func test_anUnfinishedUpgradeIsClosedAfterTheTimeout() throws {
        let port = try startServer(upgradeTimeout: .milliseconds(300), received: Received())
        let (channel, raw) = try connect(port)
        try send(channel, Array("GET \(Self.path) HTTP/1.1\r\nHost: x\r\n".utf8))
        let started = Date()
        XCTAssertTrue(waitUntil(5) { raw.closed.withLockedValue { $0 } })
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.2)
    }

    func test_theWrongPathOrNoUpgradeIsNotACarrier() throws {
        let received = Received()
        let port = try startServer(received: received)
        let (a, aRaw) = try connect(port)
        try send(a, upgradeRequest(path: "/ws-wrongwrongwrongwrongwr"))
        XCTAssertTrue(waitUntil(5) { aRaw.closed.withLockedValue { $0 } })
        XCTAssertTrue(aRaw.text.withLockedValue { $0 }.hasPrefix("HTTP/1.1 404"), aRaw.text.withLockedValue { $0 })
        XCTAssertFalse(aRaw.text.withLockedValue { $0 }.lowercased().contains("server:"))
        let (b, bRaw) = try connect(port)
        try send(b, Array("GET \(Self.path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertTrue(waitUntil(5) { bRaw.closed.withLockedValue { $0 } })
        XCTAssertTrue(bRaw.text.withLockedValue { $0 }.hasPrefix("HTTP/1.1 404"), bRaw.text.withLockedValue { $0 })
    }

    func test_aFrameOver64KiBClosesTheCarrierAndOneUnderIsDelivered() throws {
        let received = Received()
        let port = try startServer(received: received)
        let (channel, raw) = try connect(port)
        try send(channel, upgradeRequest())
        XCTAssertTrue(waitUntil(5) { raw.text.withLockedValue { $0 }.contains("\r\n\r\n") })
        XCTAssertTrue(raw.text.withLockedValue { $0 }.hasPrefix("HTTP/1.1 101"), raw.text.withLockedValue { $0 })
        XCTAssertTrue(raw.text.withLockedValue { $0 }.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "RFC 6455's accept value")
        try send(channel, frame(length: 60_000))
        XCTAssertTrue(waitUntil(5) { received.bytes.withLockedValue { $0 } == 60_000 }, "\(received.bytes.withLockedValue { $0 })")
        try send(channel, frame(length: WebSocketCarrier.maxMessageBytes + 1))
        XCTAssertTrue(waitUntil(5) { raw.closed.withLockedValue { $0 } }, "closed past 64 KiB")
        XCTAssertEqual(received.bytes.withLockedValue { $0 }, 60_000, "nothing of the oversized frame was delivered")
    }

    func test_theBridgeSplitsLargeWritesAnswersPingsAndPingsWhenIdle() throws {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        try channel.pipeline.syncOperations.addHandler(WebSocketBridgeHandler(isClient: false, pingInterval: .seconds(30)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeOutbound(channel.allocator.buffer(repeating: 7, count: 150_000))
        var sizes: [Int] = []
        while let f = try channel.readOutbound(as: WebSocketFrame.self) {
            XCTAssertEqual(f.opcode, .binary)
            XCTAssertTrue(f.fin)
            XCTAssertNil(f.maskKey, "servers do not mask")
            sizes.append(f.data.readableBytes)
        }
        XCTAssertEqual(sizes, [65_536, 65_536, 18_928])

        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: channel.allocator.buffer(string: "hi")))
        let pong = try XCTUnwrap(channel.readOutbound(as: WebSocketFrame.self))
        XCTAssertEqual(pong.opcode, .pong)
        XCTAssertEqual(String(buffer: pong.data), "hi")
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .binary, data: channel.allocator.buffer(string: "carrier")))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) }, "carrier")

        loop.advanceTime(by: .seconds(30)) // a write happened in this period: no ping yet
        XCTAssertNil(try channel.readOutbound(as: WebSocketFrame.self))
        loop.advanceTime(by: .seconds(30))
        XCTAssertEqual(try channel.readOutbound(as: WebSocketFrame.self)?.opcode, .ping, "an idle carrier pings")
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: channel.allocator.buffer(capacity: 0)))
        XCTAssertFalse(channel.isActive, "a close frame closes the carrier")
    }

    func test_secretPathsAreCheckedAndGenerated() {
        XCTAssertNil(WebSocketCarrier.pathProblem(Self.path))
        XCTAssertNotNil(WebSocketCarrier.pathProblem("/short"))
        XCTAssertNotNil(WebSocketCarrier.pathProblem("no-leading-slash-abcdefghijkl"))
        XCTAssertNotNil(WebSocketCarrier.pathProblem("/has space abcdefghijklmnopq"))
        let a = WebSocketCarrier.randomPath(), b = WebSocketCarrier.randomPath()
        XCTAssertNil(WebSocketCarrier.pathProblem(a))
        XCTAssertNotEqual(a, b)
    }
}
