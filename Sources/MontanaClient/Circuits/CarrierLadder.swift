import MontanaTransport
import NIOCore

/// The carrier ladder (PROTOCOL.md 2, issue 9 item 4): per front, the profiles of its record in
/// the client's order (`CircuitOptions.carriers`), keeping only those this client can open
/// (T0 always, others with a connector). The profile that last reached this front from here
/// goes first, else the one that last reached any front from here (a network that blocks T0
/// blocks it for every front): the ladder starts where it worked. Only the client's event loop
/// calls these.
extension CircuitManager {
    func carrierLadder(for front: AllianceMember) -> [CarrierEndpoint] {
        var order = options.carriers.filter { $0 == .t0 || options.connectors[$0] != nil }
        let preferred = reachability.observation(front.nodeID)?.workingProfile ?? reachability.lastWorkingProfile
        if let preferred, let i = order.firstIndex(of: preferred), i > 0 {
            order.insert(order.remove(at: i), at: 0)
        }
        return order.compactMap { front.endpoint($0) }
    }

    /// The connector for a non-T0 endpoint (nil: T0, today's plain TCP dial).
    func carrierDial(_ endpoint: CarrierEndpoint) -> CarrierDial? {
        guard endpoint.profile != .t0, let connector = options.connectors[endpoint.profile] else { return nil }
        return CarrierDial(connector: connector, endpoint: endpoint)
    }
}
