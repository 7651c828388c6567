import Foundation

/// Unix seconds, the time base of prefaces, proofs and windows.
public enum WallClock {
    public static func now() -> UInt64 { UInt64(Date().timeIntervalSince1970) }
}
