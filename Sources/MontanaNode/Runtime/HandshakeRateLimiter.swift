import Foundation
import NIOConcurrencyHelpers

/// A token bucket for session handshakes: each costs the responder an ML-DSA signature
/// (~1 ms), so unauthenticated input must not be able to trigger them without bound.
public final class HandshakeRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var last: Double
    }

    private let rate: Double
    private let bucket: NIOLockedValueBox<Bucket>

    public init(perSecond: Int) {
        rate = Double(max(1, perSecond))
        bucket = NIOLockedValueBox(Bucket(tokens: Double(max(1, perSecond)), last: Self.now()))
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    public func tryAcquire() -> Bool {
        let rate = self.rate
        return bucket.withLockedValue { b in
            let t = Self.now()
            b.tokens = min(rate, b.tokens + (t - b.last) * rate)
            b.last = t
            guard b.tokens >= 1 else { return false }
            b.tokens -= 1
            return true
        }
    }
}

/// Counts circuits per source address and in total; a connection over either limit is closed
/// before it costs anything. Source addresses live only in memory, only while connected.
/// Configured members are exempt from the per-source cap: a front relays many users' circuits to
/// an exit from one address.
public final class CircuitLimiter: Sendable {
    private struct Counts {
        var total = 0
        var perSource: [String: Int] = [:]
    }

    private let perSource: Int
    private let total: Int
    private let exempt: Set<String>
    private let counts = NIOLockedValueBox(Counts())

    public init(perSource: Int, total: Int, exempt: Set<String> = []) {
        self.perSource = perSource
        self.total = total
        self.exempt = exempt
    }

    public func acquire(source: String) -> Bool {
        let exempt = self.exempt.contains(source)
        return counts.withLockedValue { c in
            guard c.total < total, exempt || c.perSource[source, default: 0] < perSource else { return false }
            c.total += 1
            c.perSource[source, default: 0] += 1
            return true
        }
    }

    public func release(source: String) {
        counts.withLockedValue { c in
            c.total -= 1
            let n = c.perSource[source, default: 1] - 1
            c.perSource[source] = n > 0 ? n : nil
        }
    }

    public var active: Int { counts.withLockedValue { $0.total } }
}
