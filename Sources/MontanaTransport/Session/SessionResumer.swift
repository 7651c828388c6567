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
                              localAddress: SocketAddress?, connectTimeout: TimeAmount) -> EventLoopFuture<Void> {
        let loop = session.eventLoop
        var nonce = [UInt8](repeating: 0, count: 32)
        for i in nonce.indices { nonce[i] = UInt8.random(in: .min ... .max) }
        guard let request = session.resumeRequest(nonce: nonce) else {
            return loop.makeFailedFuture(SessionResumeError.notResumable)
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: exit.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: .resume))
        let done = loop.makePromise(of: Void.self)
        return CircuitDialer.connect(on: loop, host: front.host, port: front.port, hopKEMPublicKey: front.kemPublicKey,
                                     message: .hop(hop), timeout: answerTimeout, connectTimeout: connectTimeout,
                                     localAddress: localAddress) { channel in
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
        var out = context.channel.allocator.buffer(capacity: 2 + request.count)
        out.writeInteger(UInt16(request.count))
        out.writeBytes(request)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if finished {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        guard var b = buffer, let length = b.getInteger(at: b.readerIndex, as: UInt16.self) else { return }
        guard Int(length) == Resumption.answerSize else {
            finish(context, .failure(SessionResumeError.badAnswer("answer of \(length) bytes")))
            return
        }
        guard b.readableBytes >= 2 + Resumption.answerSize else { return }
        b.moveReaderIndex(forwardBy: 2)
        let answer = b.readBytes(length: Resumption.answerSize) ?? []
        buffer = nil
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
