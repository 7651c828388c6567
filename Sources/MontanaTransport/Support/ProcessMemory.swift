import CMontanaLinux
import Foundation
import NIOConcurrencyHelpers

/// The process's heap, as glibc's malloc sees it, and the one tuning a node applies to it.
///
/// glibc gives each thread that contends for the heap an arena of its own, up to 8 per core.
/// A node's event loops, the kernel relay thread and NIO's blocking pool then each keep the
/// memory they freed in their own arena, so a burst that went through one loop is not reused by
/// another: measured with 1,000 concurrent streams through one exit (docs/BENCHMARKS.md), the
/// default arenas held 30–50 MiB more at the peak than one arena did. A node therefore caps
/// the arenas (`[limits] malloc_arenas`, default 1) before it starts any thread, and a
/// `HeapTrimmer` gives free pages back after bursts. An operator's own `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES` in the environment wins over the cap.
public enum ProcessMemory {
    /// What `mallinfo2` reports; nil where it is not available (not glibc).
    public struct Heap: Sendable, Equatable {
        /// Bytes handed out by malloc and not yet freed (small chunks plus mmapped ones).
        public var inUseBytes: UInt64
        /// Bytes the arenas hold from the system (in use or free for reuse).
        public var arenaBytes: UInt64
        /// Bytes in chunks malloc mapped on their own (large allocations).
        public var mmappedBytes: UInt64

        /// Bytes the arenas hold that nothing uses: freed, kept by malloc for reuse.
        public var freeInArenasBytes: UInt64 {
            let small = inUseBytes >= mmappedBytes ? inUseBytes - mmappedBytes : 0
            return arenaBytes >= small ? arenaBytes - small : 0
        }
    }

    public static func heap() -> Heap? {
        var out: [UInt64] = [0, 0, 0]
        let rc = out.withUnsafeMutableBufferPointer { montana_malloc_info($0.baseAddress) }
        guard rc == 0 else { return nil }
        return Heap(inUseBytes: out[0], arenaBytes: out[1], mmappedBytes: out[2])
    }

    /// Gives the arenas' free whole pages back to the system when more than `threshold` bytes sit
    /// free in them (after a burst: glibc returns only the top of an arena by itself, so a node's
    /// RSS would otherwise stay at its busiest). True when it trimmed.
    @discardableResult
    public static func trim(ifFreeExceeds threshold: UInt64) -> Bool {
        guard let heap = heap(), heap.freeInArenasBytes > threshold else { return false }
        return montana_malloc_trim() >= 0
    }

    /// The result of `capArenas`: what was applied, or why nothing was.
    public enum ArenaCap: Sendable, Equatable {
        case applied(Int)
        case environment
        case unsupported
        case off
    }

    /// Caps malloc's arenas at `arenas` (0 leaves glibc's default). Call before starting
    /// threads: arenas already created stay.
    @discardableResult
    public static func capArenas(_ arenas: Int,
                                 environment: [String: String] = ProcessInfo.processInfo.environment) -> ArenaCap {
        guard arenas > 0 else { return .off }
        if environment["MALLOC_ARENA_MAX"] != nil { return .environment }
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("arena_max") { return .environment }
        let value = Int32(clamping: arenas)
        return montana_malloc_arena_max(value) == 0 ? .applied(Int(value)) : .unsupported
    }
}

/// Every `interval`, on a utility queue (never an event loop: a trim holds the arenas' locks for
/// a few milliseconds), trims the heap when more than `threshold` bytes sit free in the arenas.
public final class HeapTrimmer: @unchecked Sendable {
    /// 32 MiB free before a trim: below it the pages are worth keeping for the next burst.
    public static let defaultThreshold: UInt64 = 32 * 1_048_576
    public static let defaultInterval: TimeInterval = 2

    private let timer: any DispatchSourceTimer
    private let trimCount = NIOLockedValueBox(0)

    public init(interval: TimeInterval = HeapTrimmer.defaultInterval, threshold: UInt64 = HeapTrimmer.defaultThreshold) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let trims = trimCount
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .seconds(1))
        timer.setEventHandler {
            if ProcessMemory.trim(ifFreeExceeds: threshold) { trims.withLockedValue { $0 += 1 } }
        }
        timer.resume()
    }

    /// Trims done so far (`/status` `memory.trims`).
    public var trims: Int { trimCount.withLockedValue { $0 } }

    public func stop() { timer.cancel() }

    deinit { timer.cancel() }
}
