import NIOCore

/// Glues two channels on the same event loop: bytes read on one are written to the other,
/// untouched (a front never decrypts what it relays). Backpressure is end to end: a side only
/// reads while its partner is writable, so a slow side never makes the relay buffer without
/// bound. Half-closes are forwarded.
public final class SpliceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var partner: SpliceHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let onBytes: ((Int) -> Void)?

    public init(onBytes: ((Int) -> Void)? = nil) {
        self.onBytes = onBytes
    }

    /// Links two handlers; call on their shared event loop before adding them to pipelines.
    public static func pair(onBytes: ((Int) -> Void)? = nil) -> (SpliceHandler, SpliceHandler) {
        let a = SpliceHandler(onBytes: onBytes)
        let b = SpliceHandler(onBytes: onBytes)
        a.partner = b
        b.partner = a
        return (a, b)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { context.read() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        onBytes?(buffer.readableBytes)
        partner?.partnerWrite(buffer)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        // Carriers run with autoRead off: ask for more only while the partner keeps up.
        read(context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClose(mode: .all)
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            partner?.partnerClose(mode: .output)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerWritable() }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if partner?.isWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerWrite(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerWritable() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    private func partnerClose(mode: CloseMode) {
        guard let context else { return }
        if mode == .output {
            context.close(mode: .output, promise: nil)
        } else {
            context.flush()
            context.close(promise: nil)
        }
    }
}
