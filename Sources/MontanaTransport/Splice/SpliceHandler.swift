import CMontanaLinux
import NIOCore

/// Glues two channels on the same event loop: bytes read on one are written to the other,
/// untouched (a front never decrypts what it relays). Backpressure is end to end: a side only
/// reads while its partner is writable, so a slow side never makes the relay buffer without
/// bound. Half-closes are forwarded.
///
/// With a `KernelHandoff`, a pair that has relayed `threshold` bytes moves to the kernel: both
/// sides stop reading, wait until what they wrote is on the sockets, and then hand duplicates of
/// the two descriptors to the `KernelSplicer` and close their channels (the sockets stay open
/// through the duplicates). Bytes the channels already read are written first, so nothing is
/// lost or reordered. If the handoff is not possible, the pair keeps relaying here.
public final class SpliceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var partner: SpliceHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let onBytes: ((Int) -> Void)?
    private let link: Link

    private init(onBytes: ((Int) -> Void)?, link: Link) {
        self.onBytes = onBytes
        self.link = link
    }

    /// Links two handlers; call on their shared event loop before adding them to pipelines.
    public static func pair(onBytes: ((Int) -> Void)? = nil, kernel: KernelHandoff? = nil) -> (SpliceHandler, SpliceHandler) {
        let link = Link(kernel: kernel)
        let a = SpliceHandler(onBytes: onBytes, link: link)
        let b = SpliceHandler(onBytes: onBytes, link: link)
        a.partner = b
        b.partner = a
        link.sides = (a, b)
        return (a, b)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { context.read() }
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        read(context: context)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let count = buffer.readableBytes
        onBytes?(count)
        partner?.partnerWrite(buffer, link: link)
        link.relayed(count)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        // Carriers run with autoRead off: ask for more only while the partner keeps up.
        read(context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if link.state != .kernel {
            link.abandon()
            partner?.partnerClose(mode: .all)
        }
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed, link.state != .kernel {
            link.abandon()
            partner?.partnerClose(mode: .output)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if link.state != .kernel { context.close(promise: nil) }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerWritable() }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if link.state == .draining || link.state == .kernel || !(partner?.isWritable ?? true) {
            pendingRead = true
        } else {
            context.read()
        }
    }

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerWrite(_ buffer: ByteBuffer, link: Link) {
        guard let context else { return }
        guard link.tracksWrites else {
            context.write(wrapOutboundOut(buffer), promise: nil)
            return
        }
        link.unwritten += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in
            link.unwritten -= 1
            link.commitIfDrained()
        }
        context.write(wrapOutboundOut(buffer), promise: written)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerWritable() {
        if pendingRead, link.state != .draining, link.state != .kernel, let context {
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

    /// Resumes reading after a handoff that did not happen.
    fileprivate func resume() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    fileprivate var channel: (any Channel)? { context?.channel }

    /// The state both sides of a pair share (event loop only).
    private final class Link {
        enum State { case userspace, draining, kernel, off }
        let kernel: KernelHandoff?
        var state: State
        var sides: (SpliceHandler, SpliceHandler)?
        var total = 0
        var unwritten = 0
        var descriptors: (CInt, CInt)?

        init(kernel: KernelHandoff?) {
            self.kernel = kernel
            state = kernel == nil ? .off : .userspace
        }

        var tracksWrites: Bool { state == .userspace || state == .draining }

        func relayed(_ count: Int) {
            guard state == .userspace, let kernel else { return }
            total += count
            guard total >= kernel.threshold, kernel.splicer.hasRoom else { return }
            begin()
        }

        /// Stops reading on both sides and finds the two sockets' descriptors by their cookies.
        private func begin() {
            guard let (a, b) = sides, let channelA = a.channel, let channelB = b.channel,
                  let cookieA = Self.cookie(channelA), let cookieB = Self.cookie(channelB) else {
                state = .off
                return
            }
            state = .draining
            // Barriers: they complete once everything written before them (the preface answer,
            // pipelined bytes) is on the sockets.
            a.partner?.partnerWrite(channelB.allocator.buffer(capacity: 0), link: self)
            b.partner?.partnerWrite(channelA.allocator.buffer(capacity: 0), link: self)
            a.partnerFlush()
            b.partnerFlush()
            cookieA.and(cookieB).assumeIsolated().whenComplete { result in
                guard self.state == .draining, case .success(let (ca, cb)) = result else {
                    self.abandon()
                    return
                }
                let fdA = montana_find_socket(ca)
                let fdB = montana_find_socket(cb)
                guard fdA >= 0, fdB >= 0 else {
                    self.abandon()
                    return
                }
                self.descriptors = (fdA, fdB)
                self.commitIfDrained()
            }
        }

        private static func cookie(_ channel: any Channel) -> EventLoopFuture<UInt64>? {
            guard let provider = channel as? any SocketOptionProvider else { return nil }
            return provider.unsafeGetSocketOption(level: SocketOptionLevel(montana_sol_socket()), name: SocketOptionName(montana_so_cookie()))
        }

        /// Hands the sockets to the kernel once everything read has been written.
        func commitIfDrained() {
            guard state == .draining, unwritten == 0, let (fdA, fdB) = descriptors, let kernel,
                  let (a, b) = sides, let channelA = a.channel, let channelB = b.channel,
                  channelA.isActive, channelB.isActive else { return }
            let dupA = montana_dup(fdA)
            let dupB = dupA >= 0 ? montana_dup(fdB) : -1
            guard dupA >= 0, dupB >= 0 else {
                if dupA >= 0 { _ = montana_close(dupA) }
                abandon()
                return
            }
            guard kernel.splicer.add(dupA, dupB, onBytes: kernel.onBytes, onEnd: kernel.onEnd) else {
                _ = montana_close(dupA)
                _ = montana_close(dupB)
                abandon()
                return
            }
            state = .kernel
            kernel.handedOff()
            // The duplicates keep the sockets open; closing the channels only deregisters them.
            channelA.close(promise: nil)
            channelB.close(promise: nil)
        }

        /// The pair stays in userspace for good (a side ended, or the handoff failed).
        func abandon() {
            guard state == .userspace || state == .draining else { return }
            let wasDraining = state == .draining
            state = .off
            if wasDraining, let (a, b) = sides {
                a.resume()
                b.resume()
            }
        }
    }
}

/// What a splice pair needs to move to the kernel relay.
public struct KernelHandoff {
    public let splicer: KernelSplicer
    /// Bytes relayed (both directions) before the pair moves; control sessions stay in userspace.
    public let threshold: Int
    /// Called on the event loop when the circuit moved; from then on `onEnd` (on the relay
    /// thread) marks its end, not the channels' close.
    public let handedOff: () -> Void
    public let onBytes: @Sendable (Int) -> Void
    public let onEnd: @Sendable () -> Void

    /// 256 KiB: directory fetches, pings and short exchanges never pay for the descriptor scan.
    public static let defaultThreshold = 256 * 1024

    public init(splicer: KernelSplicer, threshold: Int = KernelHandoff.defaultThreshold, handedOff: @escaping () -> Void,
                onBytes: @escaping @Sendable (Int) -> Void, onEnd: @escaping @Sendable () -> Void) {
        self.splicer = splicer
        self.threshold = threshold
        self.handedOff = handedOff
        self.onBytes = onBytes
        self.onEnd = onEnd
    }
}
