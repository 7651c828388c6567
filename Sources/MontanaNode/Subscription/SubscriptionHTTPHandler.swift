import Foundation
import MontanaDirectory
import NIOCore
import NIOHTTP1
import NIOPosix

/// Answers the subscription server's requests: `GET /`, `GET /sub` and `GET` of the path the
/// document's `update.url` names → the document; any other path → 404; any other method → 405.
/// Bodies are plain and name no software. A connection that completes no request within the idle
/// timeout (10 s by default) is closed, which also bounds slow-header clients.
final class SubscriptionHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let source: SubscriptionSource
    private let idleTimeout: TimeAmount
    private var request: HTTPRequestHead?
    private var idle: Scheduled<Void>?

    init(source: SubscriptionSource, idleTimeout: TimeAmount) {
        self.source = source
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armIdleTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idle?.cancel()
        idle = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let head = HTTPExchange.completedRequest(unwrapInboundIn(data), pending: &request) else { return }
        idle?.cancel()
        idle = nil
        respond(to: head, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idle?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        idle = context.eventLoop.scheduleTask(in: idleTimeout) { loopBound.value.close(promise: nil) }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard head.method == .GET else {
            send(status: .methodNotAllowed, headers: [("Allow", "GET")], body: Array("method not allowed\n".utf8),
                 keepAlive: false, context: context)
            return
        }
        let path = String(head.uri.prefix { $0 != "?" && $0 != "#" })
        let keepAlive = head.isKeepAlive
        let source = self.source
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop) { source.current() }.whenComplete { result in
            let (handler, context) = loopBound.value
            guard let current = (try? result.get()) ?? nil else {
                handler.send(status: .serviceUnavailable, headers: [], body: Array("unavailable\n".utf8), keepAlive: false, context: context)
                return
            }
            guard Self.serves(path: path, document: current.document) else {
                handler.send(status: .notFound, headers: [], body: Array("not found\n".utf8), keepAlive: keepAlive, context: context)
                return
            }
            handler.send(status: .ok, headers: Self.documentHeaders(current.document), body: current.bytes,
                         contentType: "application/json", keepAlive: keepAlive, context: context)
        }
    }

    /// `/`, `/sub`, and the path of the document's own update URL.
    static func serves(path: String, document: SubscriptionDocument) -> Bool {
        path == "/" || path == "/sub" || (document.update.path.map { $0 == path } ?? false)
    }

    /// The headers subscription clients (Clash and its kin) read: refresh interval, a title that
    /// survives any bytes (base64), traffic and expiry from the pass.
    static func documentHeaders(_ document: SubscriptionDocument) -> [(String, String)] {
        let pass = document.account?.pass
        return [
            ("profile-update-interval", String(document.update.intervalHours)),
            ("profile-title", "base64:" + Data(document.title.utf8).base64EncodedString()),
            ("subscription-userinfo", "upload=0; download=0; total=\(pass?.quotaBytes ?? 0); expire=\(pass?.notAfter ?? 0)"),
            ("Content-Disposition", "attachment; filename=\"montana.json\""),
        ]
    }

    private func send(status: HTTPResponseStatus, headers extra: [(String, String)], body: [UInt8],
                      contentType: String = "text/plain; charset=utf-8", keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let done = HTTPExchange.respond(status: status, version: .http1_1, contentType: contentType, extra: extra, body: body,
                                        keepAlive: keepAlive, context: context)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        done.whenComplete { _ in
            let (handler, context) = loopBound.value
            if keepAlive {
                handler.armIdleTimer(context: context)
            } else {
                context.close(promise: nil)
            }
        }
    }
}
