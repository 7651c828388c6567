/// A token bucket on the monotonic clock (nanoseconds). Rates and bursts live in the caller's
/// configuration, so an entry is two words. Used by admission (per-prefix buckets, checked
/// together before any is taken) and by yamux (ping and refused-stream budgets).
public struct TokenBucket: Sendable {
    public private(set) var tokens: Double
    public private(set) var last: UInt64

    public init(burst: Int, now: UInt64) {
        tokens = Double(burst)
        last = now
    }

    /// Tokens after refilling to `now` (a clock that went backwards refills nothing).
    public func level(rate: Int, burst: Int, now: UInt64) -> Double {
        let elapsed = now >= last ? now - last : 0
        return min(Double(burst), tokens + Double(elapsed) / 1e9 * Double(rate))
    }

    public mutating func refill(rate: Int, burst: Int, now: UInt64) {
        tokens = level(rate: rate, burst: burst, now: now)
        if now > last { last = now }
    }

    public func isFull(rate: Int, burst: Int, now: UInt64) -> Bool {
        level(rate: rate, burst: burst, now: now) >= Double(burst)
    }

    /// Refills, and reports whether a token is there (without taking it).
    public mutating func has(rate: Int, burst: Int, now: UInt64) -> Bool {
        refill(rate: rate, burst: burst, now: now)
        return tokens >= 1
    }

    public mutating func take() {
        tokens = max(0, tokens - 1)
    }

    /// Refills and takes a token if there is one: the common single-bucket case.
    public mutating func take(rate: Int, burst: Int, now: UInt64) -> Bool {
        guard has(rate: rate, burst: burst, now: now) else { return false }
        take()
        return true
    }
}
