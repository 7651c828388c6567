import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// A hostile member's side of `/montana/peer-exchange/1.0.0` (PROTOCOL.md 8.6), written with
/// the product's libraries: a session to one member as `identity` (a real member's, so the
/// responder takes the exchange), a first frame with an empty digest, then one `record` frame
/// per item and `end`. The responder validates every record and counts each rejection.
enum FederationExchange {
    static let protocolID = "/montana/peer-exchange/1.0.0"
    /// The whole exchange (handshake included) ends within 20 s or counts as not delivered.
    static let timeout: TimeInterval = 20
    static let attempts = 6
    static let retryDelay: TimeInterval = 5

    /// How one exchange went.
    enum Outcome: Equatable, CustomStringConvertible {
        /// The responder answered `end` and finished the stream: it applies the batch.
        case delivered
        /// The session or the stream failed first (the text says how and at which step).
        case failed(String)

        var description: String {
            switch self {
            case .delivered: return "delivered"
            case .failed(let why): return why
            }
        }
    }

    static func send(records: [[UInt8]], to target: RelayTarget, as identity: IdentityKey, alliance: [UInt8],
                     on loop: any EventLoop) throws -> Outcome {
        let future = SessionDialer.connect(on: loop, to: target, identity: identity, alliance: alliance, timeout: .seconds(15))
            .flatMapError { error in loop.makeFailedFuture(E2EError("no session: \(error)")) }
            .flatMap { session -> EventLoopFuture<Outcome> in
                let promise = loop.makePromise(of: Outcome.self)
                guard let stream = session.mux.openStream(protocol: protocolID, negotiated: { ok in
                    if !ok { promise.succeed(.failed("the responder refused \(protocolID)")) }
                }) else {
                    session.close()
                    return loop.makeSucceededFuture(.failed("openStream failed"))
                }
                let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
                let seen = Progress()
                framed.onMessage = { bytes in
                    seen.frames += 1
                    if let frame = try? SyncFrame.decode(bytes), frame.end != nil { seen.answeredEnd = true }
                }
                framed.onEnd = { end in
                    promise.succeed(seen.answeredEnd && end == .remoteFinished ? .delivered
                                    : .failed("the stream ended (\(end)) after \(seen.frames) frames, end answered: \(seen.answeredEnd)"))
                }
                // An empty digest: the responder sends what it has, then `end`; we ignore it.
                framed.send(SyncFrame(digest: []).encode())
                for record in records { framed.send(SyncFrame(record: record).encode()) }
                framed.send(SyncFrame(end: 1).encode())
                framed.finish()
                framed.start()
                let timer = loop.scheduleTask(in: .seconds(Int64(timeout))) {
                    promise.succeed(.failed("no end within \(Int(timeout)) s (\(seen.frames) frames received, end answered: \(seen.answeredEnd), \(framed.queuedBytes) bytes not sent)"))
                }
                return promise.futureResult.always { _ in
                    timer.cancel()
                    session.close()
                }
            }
            .flatMapErrorThrowing { error in .failed("\(error)") }
        return try awaitFuture(future, timeout: timeout + 20, what: "the peer exchange with \(target.host):\(target.port)")
    }

    /// `send`, tried up to 6 times 5 s apart: the responder allows a member a burst of 8
    /// exchanges and then one per 5 s (`InboundExchangeLimiter`), and the real member whose
    /// identity we borrow spends the same budget on its own gossip.
    static func deliver(records: [[UInt8]], to target: RelayTarget, as identity: IdentityKey, alliance: [UInt8],
                        on loop: any EventLoop) throws {
        var outcomes: [String] = []
        for attempt in 1...attempts {
            let outcome = try send(records: records, to: target, as: identity, alliance: alliance, on: loop)
            if outcome == .delivered { return }
            outcomes.append("\(outcome)")
            if attempt < attempts { Thread.sleep(forTimeInterval: retryDelay) }
        }
        throw E2EError("\(target.host):\(target.port) did not take the exchange in \(attempts) attempts: \(outcomes.joined(separator: "; "))")
    }

    /// What the responder sent so far (touched on the session's loop only).
    private final class Progress: @unchecked Sendable {
        var frames = 0
        var answeredEnd = false
    }
}
