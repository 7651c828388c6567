import NIOCore

/// Sits in front of the HTTP decoder and answers `431 Request Header Fields Too Large` (and
/// closes) once a request head (request line and headers, up to the empty line) exceeds `limit`
/// bytes. NIO's decoder allows 80 KB and answers 400; a subscription request is a few hundred
/// bytes, so the bound here is much tighter and the status says why.
///
/// It counts every byte after the previous head's end, so a request body counts towards the next
/// head: the server takes only GETs, whose requests have no body.
final class RequestHeadLimitHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var count = 0
    /// The last byte other than CR was LF: another LF ends the head (CRLF CRLF or LF LF).
    private var afterLineFeed = false
    private var refused = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        for byte in buffer.readableBytesView {
            count += 1
            if byte == UInt8(ascii: "\n") {
                if afterLineFeed {
                    count = 0
                    afterLineFeed = false
                } else {
                    afterLineFeed = true
                }
            } else if byte != UInt8(ascii: "\r") {
                afterLineFeed = false
            }
            if count > limit {
                refuse(context: context)
                return
            }
        }
        context.fireChannelRead(data)
    }

    private func refuse(context: ChannelHandlerContext) {
        refused = true
        let response = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response))).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }
}
