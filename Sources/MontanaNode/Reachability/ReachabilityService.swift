import MontanaCrypto
import MontanaReachability
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore

/// `/montana/reachability/1.0.0` at a node: clients submit adverts and fetch the map for their
/// vantage; members sync votes. A submission counts for the source group of the address this
/// node sees the session come from, and only on a session that reached this node directly (a
/// session relayed by a front shows the front's address, so its submissions are refused: a
/// reporter cannot borrow fronts' /16s). One request per stream, at most 64 KiB.
struct ReachabilityService: StreamService {
    let protocolName = ReachabilityMessage.protocolID
    let map: ReachabilityMap
    /// The submitter's source group when the session reached this node directly, else nil.
    let source: SourceGroup?
    /// The peer is a member of the alliance (sync allowed).
    let member: Bool
    static let maxRequest = 64 * 1024

    static func window() -> UInt64 { TimeWindow.window(unixSeconds: WallClock.now()) }

    func serve(_ stream: MuxStream, session: MuxHandler) {
        var decoder = LengthPrefixedDecoder(maxMessageSize: Self.maxRequest)
        var answered = false
        let map = self.map, source = self.source, member = self.member
        stream.onData = { [weak stream] buffer in
            guard let stream else { return }
            decoder.append(buffer)
            stream.consumed(buffer.readableBytes)
            guard !answered else { return }
            let request: ReachabilityMessage
            do {
                guard let body = try decoder.nextMessage() else { return }
                request = try ReachabilityMessage.decode(Array(body.readableBytesView), answer: false)
            } catch {
                stream.reset()
                return
            }
            answered = true
            let window = Self.window()
            let answer: ReachabilityMessage
            switch request {
            case .submit(let adverts):
                answer = .submitted(source.map { map.submit(adverts, from: $0, window: window) } ?? 0)
            case .fetch(let vantage):
                map.expire(window: window)
                answer = .map(map.entries(for: vantage))
            case .sync(let items):
                answer = .synced(member ? map.merge(items, window: window) : 0)
            default:
                stream.reset()
                return
            }
            stream.write(LengthPrefixedDecoder.frame(answer.encode()))
            stream.closeWrite()
        }
        stream.startReading()
    }
}
