import Foundation

/// Unix seconds, the time base of prefaces, proofs and windows.
public enum WallClock {
    /// A clock set before 1970 reads as 0 (every timestamp is then stale) instead of trapping.
    public static func now() -> UInt64 {
        let seconds = Date().timeIntervalSince1970
        return seconds > 0 ? UInt64(min(seconds, 1e18)) : 0
    }
}
