import MontanaCrypto
import MontanaReachability
import MontanaTransport
import MontanaWire
import NIOCore

/// The client's part in the alliance's reachability map (PROTOCOL.md 9): what it saw of each
/// front from here, as adverts for its vantage, and the map a front serves for that vantage.
extension CircuitManager {
    /// At most this many fronts are reported per exchange (one submit message).
    static let maxReported = ReachabilityMessage.maxSubmit

    /// The client's vantage: (country, ASN) of its observed address from `vantageLookup`, else unknown.
    public var vantage: Vantage {
        guard let address = reachability.observedAddress, let found = vantageLookup?(address) else { return .unknown }
        return found
    }

    /// Adverts for the fronts tried from here lately (`FrontReachability.reports`).
    func reachabilityAdverts(window: UInt64) -> [ReachabilityAdvert] {
        let v = vantage
        return reachability.reports(country: v.country, asn: v.asn, window: window, limit: Self.maxReported)
    }

    /// Submits this client's adverts over `mux` (a control session straight to a front) and
    /// takes the front's map for this vantage into the ranking. Call on the manager's loop.
    public func exchangeReachability(on mux: MuxHandler) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        let window = TimeWindow.window(unixSeconds: WallClock.now())
        let adverts = reachabilityAdverts(window: window)
        let submitted: EventLoopFuture<Void> = adverts.isEmpty ? loop.makeSucceededVoidFuture()
            : ReachabilityExchange.request(.submit(adverts), on: mux, loop: loop).map { _ in }
        let v = vantage
        return submitted.flatMap { [self] in ReachabilityExchange.request(.fetch(v), on: mux, loop: loop) }
            .map { [self] answer in
                guard case .map(let entries) = answer, v == vantage else { return }
                var map: [NodeID: FrontReachability.MapState] = [:]
                for e in entries where e.profile == 0 {
                    guard let node = try? NodeID(bytes: e.target) else { continue }
                    switch e.state {
                    case .reachable: map[node] = .reachable
                    case .unreachable: map[node] = .unreachable
                    case .unknown: continue
                    }
                }
                reachability.map = map
                mapFetchedAt = .now()
                // The map has one entry per (target, profile): a front with T0 and T2 adverts is
                // listed twice. Count T0's, as `map` does; a repeated key (any front's answer may
                // hold one) keeps the larger count instead of trapping.
                mapSources = Dictionary(entries.filter { $0.profile == 0 }.compactMap { e in (try? NodeID(bytes: e.target)).map { ($0, e.sources) } },
                                        uniquingKeysWith: { max($0, $1) })
            }
    }
}
