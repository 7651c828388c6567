import Foundation
import MontanaSession

/// A node-wide budget shared by sessions on every event loop. As the yamux window budget, it is
/// the receive-window growth of all sessions (many sessions each growing windows to 16 MiB cannot
/// together pin more than `capacity` bytes; when it is spent, windows stay as they are); as the
/// control-stream budget it counts streams.
public final class SharedBudget: YamuxWindowBudget, @unchecked Sendable {
    /// Default: 256 MiB of growth across all sessions (each stream's first 256 KiB is not drawn
    /// from it; the spec fixes that initial window).
    public static let defaultCapacity: UInt64 = 256 * 1024 * 1024

    public let capacity: UInt64
    private let lock = NSLock()
    private var used: UInt64 = 0

    public init(capacity: UInt64 = SharedBudget.defaultCapacity) {
        self.capacity = capacity
    }

    public var inUse: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return used
    }

    public func reserve(_ bytes: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard bytes <= capacity - used else { return false }
        used += bytes
        return true
    }

    public func release(_ bytes: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        used -= min(bytes, used)
    }
}
