import MontanaCrypto
import MontanaWire

/// When the local proxy tells an app its CONNECT succeeded: after the exit answered (`never`),
/// at once for destinations this exit opened recently (`known`, the default), or always at once
/// (`always`, what ss-local does). Answering at once lets the app's first bytes ride with the
/// EgressOpen and saves a round trip to the exit; but a refusal then reaches the app only as a
/// closed connection, not as a SOCKS5 reply code or an HTTP 502 naming the reason. `known` keeps
/// the clear answer for the first connection to a destination and after any refusal.
public enum OptimisticConnect: String, Sendable, CaseIterable {
    case never, known, always
}

/// Destinations each exit opened successfully in the last `lifetime` (memory only, never on
/// disk): at most `capacity` entries, the oldest forgotten first.
struct OpenedDestinations {
    /// 1,024 destinations: a browsing session's hosts; past it the oldest is forgotten.
    static let capacity = 1024
    /// Ten minutes: a refusal after that gets the clear answer again.
    static let lifetime: UInt64 = 600 * 1_000_000_000

    struct Key: Hashable {
        let exit: NodeID
        let address: EgressAddress
        let port: UInt16
    }

    private var opened: [Key: UInt64] = [:]

    var count: Int { opened.count }

    func contains(_ key: Key, now: UInt64) -> Bool {
        guard let at = opened[key] else { return false }
        return now >= at && now - at < Self.lifetime
    }

    mutating func remember(_ key: Key, now: UInt64) {
        if opened[key] == nil, opened.count >= Self.capacity {
            // Expired entries go first; otherwise the oldest one.
            opened = opened.filter { now >= $0.value && now - $0.value < Self.lifetime }
            if opened.count >= Self.capacity, let oldest = opened.min(by: { $0.value < $1.value }) {
                opened[oldest.key] = nil
            }
        }
        opened[key] = now
    }

    mutating func forget(_ key: Key) {
        opened[key] = nil
    }
}
