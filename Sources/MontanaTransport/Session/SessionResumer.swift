import MontanaCrypto
import MontanaWire
import NIOCore

/// Why a resumption did not happen, as the initiator sees it.
public enum SessionResumeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The session cannot resume (closed, not negotiated, or already attached).
    case notResumable
    /// The exit refused: 1 it does not have the session (expired, evicted, or never resumable
    /// there), 2 it no longer has the data this side lacks. Unauthenticated: a fresh session follows.
    case refused(UInt8)
    /// The answer did not verify or did not fit (a front cannot forge one).
    case badAnswer(String)

    public var description: String {
        switch self {
        case .notResumable: return "the session cannot be resumed"
        case .refused(1): return "the exit no longer holds the session"
        case .refused(2): return "the exit no longer holds the data this side lacks"
        case .refused(let s): return "the exit refused the resumption (status \(s))"
        case .badAnswer(let why): return "the resumption answer was not valid: \(why)"
        }
    }
}

/// Resumes a detached session over a new circuit (PROTOCOL.md 5.3): a preface with purpose
/// `resume` to `front` naming `exit`, the resume request right behind it (0-RTT), and the exit's
/// answer; on acceptance the new carrier becomes the session's and both ends send again what the
/// other did not receive.
public enum SessionResumer {
    public static let answerTimeout = TimeAmount.seconds(5)

    /// Call on the session's loop (the carrier runs there too).
    public static func resume(_ session: SessionChannel, exit: NodeID, via front: RelayTarget, alliance: [UInt8]?,
                              localAddress: SocketAddress?, connectTimeout: TimeAmount,
                              carrier: CarrierDial? = nil) -> EventLoopFuture<Void> {
        let loop = session.eventLoop
        guard let request = session.resumeRequest(nonce: ResumeFraming.nonce()) else {
            return loop.makeFailedFuture(SessionResumeError.notResumable)
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: exit.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: .resume))
        let done = loop.makePromise(of: Void.self)
        return CircuitDialer.connect(on: loop, host: front.host, port: front.port, hopKEMPublicKey: front.kemPublicKey,
                                     message: .hop(hop), timeout: answerTimeout, connectTimeout: connectTimeout,
                                     localAddress: localAddress, carrier: carrier) { channel in
            try channel.pipeline.syncOperations.addHandler(ResumeInitiatorHandler(session: session, request: request, promise: done))
        }
        .flatMap { channel, _ in
            done.futureResult.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
        .flatMapErrorThrowing { error in
            done.fail(error)
            throw error
        }
    }
}

/// The initiator's handler on a resume circuit: sends the request, reads the 73-byte answer and
/// hands the carrier to the session (or fails). Bytes behind the answer (the exit's resent data)
/// follow into the session once its keys switched.
final class ResumeInitiatorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let session: SessionChannel
    private let request: [UInt8]
    private let promise: EventLoopPromise<Void>
    private var buffer: ByteBuffer?
    private var sent = false
    private var finished = false

    init(session: SessionChannel, request: [UInt8], promise: EventLoopPromise<Void>) {
        self.session = session
        self.request = request
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { send(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context)
        context.fireChannelActive()
    }

    private func send(_ context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        context.writeAndFlush(wrapOutboundOut(ResumeFraming.frame(request, context.channel.allocator)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if finished {
            context.fireChannelRead(data)
            return
        }
        let answer: [UInt8]
        var b: ByteBuffer
        switch ResumeFraming.read(unwrapInboundIn(data), into: &buffer, size: Resumption.answerSize) {
        case .needMore: return
        case .wrongLength(let length):
            finish(context, .failure(SessionResumeError.badAnswer("answer of \(length) bytes")))
            return
        case .message(let message, let rest):
            answer = message
            b = rest
        }
        finished = true
        let link: CarrierLinkHandler
        do {
            link = try session.installLink(in: context.channel, after: self, makeCurrent: false)
        } catch {
            finish(context, .failure(error))
            return
        }
        let request = self.request
        let promise = self.promise
        session.onLoop { s in
            switch s.resumed(over: link, answer: answer, request: request) {
            case .success: promise.succeed()
            case .failure(let error): promise.fail(error)
            }
        }
        // The exit's resent data may share the read with the answer.
        if b.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(b))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    private func finish(_ context: ChannelHandlerContext, _ result: Result<Void, any Error>) {
        finished = true
        buffer = nil
        if case .failure(let error) = result { promise.fail(error) } else { promise.succeed() }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            promise.fail(CircuitError.carrierClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !finished { finish(context, .failure(error)) }
    }
}

/// The resume messages travel as `u16 BE len ‖ message` (PROTOCOL.md 5.3), each of one fixed size.
enum ResumeFraming {
    enum Read {
        case needMore
        case wrongLength(UInt16)
        /// The message and what followed it in the same reads.
        case message([UInt8], rest: ByteBuffer)
    }

    /// Accumulates `incoming` into `buffer` until one message of `size` bytes is there.
    static func read(_ incoming: ByteBuffer, into buffer: inout ByteBuffer?, size: Int) -> Read {
        var incoming = incoming
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        guard var b = buffer, let length = b.getInteger(at: b.readerIndex, as: UInt16.self) else { return .needMore }
        guard Int(length) == size else { return .wrongLength(length) }
        guard b.readableBytes >= 2 + size else { return .needMore }
        b.moveReaderIndex(forwardBy: 2)
        let message = b.readBytes(length: size) ?? []
        buffer = nil
        return .message(message, rest: b)
    }

    static func frame(_ message: [UInt8], _ allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 2 + message.count)
        out.writeInteger(UInt16(message.count))
        out.writeBytes(message)
        return out
    }

    /// 32 fresh random bytes (SystemRandomNumberGenerator: the kernel's CSPRNG).
    static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
