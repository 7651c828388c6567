import MontanaReachability
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore

/// One `/montana/reachability/1.0.0` request on a session (a client's control session to a front,
/// or a member's gossip session): the request, then the one answer, within 5 s.
public enum ReachabilityExchange {
    public static let timeout = TimeAmount.seconds(5)
    /// The largest answer: 256 map entries or 1024 sync items fit well inside it.
    static let maxAnswer = 64 * 1024

    /// Call on `loop`, the session's event loop.
    public static func request(_ message: ReachabilityMessage, on mux: MuxHandler, loop: any EventLoop) -> EventLoopFuture<ReachabilityMessage> {
        let promise = loop.makePromise(of: ReachabilityMessage.self)
        guard let stream = mux.openStream(protocol: ReachabilityMessage.protocolID, negotiated: { ok in
            if !ok { promise.fail(ReachabilityExchangeError.refused) }
        }) else {
            return loop.makeFailedFuture(ReachabilityExchangeError.refused)
        }
        var decoder = LengthPrefixedDecoder(maxMessageSize: maxAnswer)
        stream.onData = { buffer in
            decoder.append(buffer)
            stream.consumed(buffer.readableBytes)
            do {
                if let body = try decoder.nextMessage() {
                    promise.succeed(try ReachabilityMessage.decode(Array(body.readableBytesView), answer: true))
                    stream.reset()
                }
            } catch {
                promise.fail(error)
                stream.reset()
            }
        }
        stream.onEnd = { _ in promise.fail(ReachabilityExchangeError.noAnswer) }
        stream.write(LengthPrefixedDecoder.frame(message.encode()))
        stream.startReading()
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(ReachabilityExchangeError.noAnswer)
            stream.reset()
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }
}

public enum ReachabilityExchangeError: Error, Equatable, CustomStringConvertible {
    case refused
    case noAnswer

    public var description: String {
        switch self {
        case .refused: return "the node does not serve the reachability map"
        case .noAnswer: return "the node did not answer the reachability request"
        }
    }
}
