import NIOCore
import NIOHTTP1

/// The HTTP/1.1 plumbing the admin API (`AdminHTTPHandler`) and the subscription server
/// (`SubscriptionHTTPHandler`) share: collecting one request's head and writing one complete
/// response with the same plain header set. What happens after the response (close, idle timer)
/// stays with each handler.
enum HTTPExchange {
    /// Keeps the head of the request in progress in `pending` and returns it once the request
    /// has ended; bodies are ignored (neither server takes one).
    static func completedRequest(_ part: HTTPServerRequestPart, pending: inout HTTPRequestHead?) -> HTTPRequestHead? {
        switch part {
        case .head(let head):
            pending = head
            return nil
        case .body:
            return nil
        case .end:
            defer { pending = nil }
            return pending
        }
    }

    /// Writes the head, the body (unless `includeBody` is false, as for HEAD) and the end.
    /// Headers, in this order: Content-Type, Content-Length (of `body`, also when it is not sent),
    /// Cache-Control: no-store, `extra`, and Connection: close unless `keepAlive`.
    /// Returns the future of the flushed end.
    static func respond(status: HTTPResponseStatus, version: HTTPVersion, contentType: String,
                        extra: [(String, String)] = [], body: [UInt8], includeBody: Bool = true,
                        keepAlive: Bool, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in extra { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: status, headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        if includeBody {
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        return context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
    }
}
