import NIOCore
import NIOHTTP1

/// Answers one admin request per HTTP exchange; request bodies are ignored.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: AdminRoutes
    private var request: HTTPRequestHead?

    init(routes: AdminRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let head = HTTPExchange.completedRequest(unwrapInboundIn(data), pending: &request) else { return }
        respond(to: head, context: context)
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let response = routes.respond(method: head.method, uri: head.uri)
        let keepAlive = head.isKeepAlive
        let done = HTTPExchange.respond(status: response.status, version: head.version, contentType: response.contentType,
                                        body: response.body, includeBody: head.method != .HEAD, keepAlive: keepAlive, context: context)
        if !keepAlive {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.whenComplete { _ in loopBound.value.close(promise: nil) }
        }
    }
}
