import NIOCore
import NIOHTTP1
import NIOPosix

/// The demo's local web site: what users fetch through the alliance.
///   GET /          a small page
///   GET /bytes/N   N bytes of a fixed pattern (streamed with backpressure; N up to 16 GiB)
///   GET /whoami    the address the site sees (the exit's, never the client's)
public final class DemoSite: Sendable {
    public let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    public static func start(group: any EventLoopGroup, host: String, port: Int) async throws -> DemoSite {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(DemoSiteHandler())
                }
            }
            .bind(host: host, port: port).get()
        return DemoSite(channel: channel)
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    /// The byte at `offset` of every /bytes response, so a client can verify what it got.
    public static func patternByte(_ offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset &* 2654435761) >> 13)
    }
}

final class DemoSiteHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var remaining = 0
    private var offset = 0
    private var keepAlive = false
    private static let chunk = 64 * 1024

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        keepAlive = head.isKeepAlive
        let path = head.uri.split(separator: "?").first.map(String.init) ?? "/"
        if path == "/" {
            respond(context, status: .ok, type: "text/html; charset=utf-8", body: """
            <!doctype html><title>Montana demo site</title>
            <h1>Hello through the Montana Alliance</h1>
            <p>This page came from a local web site, through a front and an exit of the demo alliance.</p>
            """)
        } else if path == "/whoami" {
            respond(context, status: .ok, type: "text/plain", body: "\(context.channel.remoteAddress?.ipAddress ?? "?")\n")
        } else if path.hasPrefix("/bytes/"), let n = Int(path.dropFirst("/bytes/".count)), n >= 0, n <= 16 << 30 {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: "\(n)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            remaining = n
            offset = 0
            pump(context)
        } else {
            respond(context, status: .notFound, type: "text/plain", body: "not found\n")
        }
    }

    private func respond(_ context: ChannelHandlerContext, status: HTTPResponseStatus, type: String, body: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        end(context)
    }

    private func end(_ context: ChannelHandlerContext) {
        let keepAlive = self.keepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    /// Writes while the socket is writable; resumes on writability.
    private func pump(_ context: ChannelHandlerContext) {
        while remaining > 0 && context.channel.isWritable {
            let n = min(Self.chunk, remaining)
            var buffer = context.channel.allocator.buffer(capacity: n)
            let start = offset
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { raw in
                for i in 0..<n { raw[i] = DemoSite.patternByte(start + i) }
                return n
            }
            offset += n
            remaining -= n
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if remaining == 0 {
            end(context)
        } else {
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && remaining > 0 { pump(context) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
