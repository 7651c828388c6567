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

    /// True when the responder answered `end` and finished the stream (it then applies the
    /// batch); false when it reset the stream (rate-limited, not a member) or timed out.
    static func send(records: [[UInt8]], to target: RelayTarget, as identity: IdentityKey, alliance: [UInt8],
                     on loop: any EventLoop) throws -> Bool {
        let future = SessionDialer.connect(on: loop, to: target, identity: identity, alliance: alliance, timeout: .seconds(15))
            .flatMap { session -> EventLoopFuture<Bool> in
                let promise = loop.makePromise(of: Bool.self)
                guard let stream = session.mux.openStream(protocol: protocolID, negotiated: { ok in
                    if !ok { promise.succeed(false) }
                }) else {
                    session.close()
                    return loop.makeSucceededFuture(false)
                }
                let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
                var answeredEnd = false
                framed.onMessage = { bytes in
                    if let frame = try? SyncFrame.decode(bytes), frame.end != nil { answeredEnd = true }
                }
                framed.onEnd = { end in promise.succeed(answeredEnd && end == .remoteFinished) }
                // An empty digest: the responder sends what it has, then `end`; we ignore it.
                framed.send(SyncFrame(digest: []).encode())
                for record in records { framed.send(SyncFrame(record: record).encode()) }
                framed.send(SyncFrame(end: 1).encode())
                framed.finish()
                framed.start()
                let timer = loop.scheduleTask(in: .seconds(Int64(timeout))) { promise.succeed(false) }
                return promise.futureResult.always { _ in
                    timer.cancel()
                    session.close()
                }
            }
        return try awaitFuture(future, timeout: timeout + 5, what: "the peer exchange with \(target.host):\(target.port)")
    }

    /// `send`, retried up to 4 times 3 s apart: the responder allows a member a burst of 8
    /// exchanges and then one per 5 s, and the real member whose identity we borrow gossips too.
    static func deliver(records: [[UInt8]], to target: RelayTarget, as identity: IdentityKey, alliance: [UInt8],
                        on loop: any EventLoop) throws {
        for attempt in 1...4 {
            if (try? send(records: records, to: target, as: identity, alliance: alliance, on: loop)) == true { return }
            if attempt < 4 { Thread.sleep(forTimeInterval: 3) }
        }
        throw E2EError("\(target.host):\(target.port) did not take the exchange in 4 attempts")
    }
}
