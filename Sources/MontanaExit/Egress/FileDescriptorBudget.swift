#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's file-descriptor budget: the `RLIMIT_NOFILE` soft limit and how many
/// descriptors are open right now. Every egress stream costs at least one descriptor (a TCP
/// connection or a UDP socket; happy eyeballs briefly holds one per attempt), so the exit
/// refuses new egress with `resource limit` while `hasRoom(reserve:)` is false instead of
/// letting `accept`, SQLite or the admin listener fail with EMFILE.
///
/// The count is taken by listing `/proc/self/fd` (Linux; `/dev/fd` elsewhere) rather than by
/// tracking opens and closes: NIO, SQLite, the logger and the resolver open descriptors that
/// no wrapper of ours sees, and the kernel's table is the only count that is always right.
/// A listing costs one `opendir` plus one `readdir` entry per open descriptor (a few µs per
/// thousand descriptors); it takes no lock and is safe from any thread.
public struct FileDescriptorBudget: Sendable, Equatable, CustomStringConvertible {
    /// The soft `RLIMIT_NOFILE`: descriptors numbered at or above it cannot be opened.
    /// `RLIM_INFINITY` (all bits set) is reported as `Int.max`.
    public let limit: Int
    /// Descriptors open in this process when the budget was taken.
    public let inUse: Int
    /// False when neither `/proc/self/fd` nor `/dev/fd` could be listed (a chroot without
    /// `/proc`); `inUse` is then 0 and `hasRoom` only checks the reserve against the limit.
    public let countIsExact: Bool

    public init(limit: Int, inUse: Int, countIsExact: Bool = true) {
        self.limit = max(0, limit)
        self.inUse = max(0, inUse)
        self.countIsExact = countIsExact
    }

    /// Descriptors that can still be opened (never negative).
    public var available: Int { limit > inUse ? limit - inUse : 0 }

    /// True when at least `reserve` descriptors would still be free after this one open, so
    /// the listeners, the accounting store and the admin port keep working. A negative
    /// reserve counts as 0.
    public func hasRoom(reserve: Int) -> Bool {
        available > max(0, reserve)
    }

    public var description: String {
        countIsExact ? "\(inUse) of \(limit) file descriptors in use" : "file descriptor limit \(limit) (count unavailable)"
    }

    /// The limit and a fresh count. Cheap enough to call per egress open. When the table is
    /// so full that listing it fails with EMFILE/ENFILE, every descriptor counts as in use.
    public static func current() -> FileDescriptorBudget {
        let limit = softLimit()
        switch count() {
        case .counted(let n): return FileDescriptorBudget(limit: limit, inUse: n)
        case .exhausted: return FileDescriptorBudget(limit: limit, inUse: limit)
        case .unavailable: return FileDescriptorBudget(limit: limit, inUse: 0, countIsExact: false)
        }
    }

    /// The current soft `RLIMIT_NOFILE`, clamped to `Int`.
    public static func softLimit() -> Int {
        readLimits().map { clampToInt($0.rlim_cur) } ?? 0
    }

    /// The outcome of `raiseSoftLimitToHard()`, for one info log line at start.
    public struct Raise: Sendable, Equatable, CustomStringConvertible {
        /// The soft limit before the call.
        public let before: Int
        /// The soft limit after the call (equal to `before` when nothing changed).
        public let after: Int
        /// The hard limit the soft limit was raised towards.
        public let hard: Int
        /// Set when `setrlimit` failed; the soft limit is then unchanged.
        public let failure: String?

        public var description: String {
            if let failure { return "file descriptor limit stays at \(before) (hard \(hard)): \(failure)" }
            return before == after
                ? "file descriptor limit \(after) (already the hard limit)"
                : "file descriptor limit raised from \(before) to \(after)"
        }
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (node start). Only raising is
    /// attempted, never lowering; unprivileged processes may always do this. On Darwin an
    /// unlimited hard limit is capped at `OPEN_MAX`, which is what the kernel accepts there.
    @discardableResult
    public static func raiseSoftLimitToHard() -> Raise {
        guard var limits = readLimits() else {
            return Raise(before: 0, after: 0, hard: 0, failure: "getrlimit failed (errno \(errno))")
        }
        let before = limits.rlim_cur
        var target = limits.rlim_max
        #if canImport(Darwin)
        target = min(target, rlim_t(OPEN_MAX))
        #endif
        guard target > before else {
            return Raise(before: clampToInt(before), after: clampToInt(before), hard: clampToInt(limits.rlim_max), failure: nil)
        }
        limits.rlim_cur = target
        #if canImport(Glibc)
        let rc = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits)
        #else
        let rc = setrlimit(RLIMIT_NOFILE, &limits)
        #endif
        guard rc == 0 else {
            return Raise(before: clampToInt(before), after: clampToInt(before), hard: clampToInt(limits.rlim_max),
                         failure: "setrlimit failed (errno \(errno))")
        }
        return Raise(before: clampToInt(before), after: softLimit(), hard: clampToInt(limits.rlim_max), failure: nil)
    }

    /// Open descriptors, by listing the kernel's per-process table; nil when it cannot be listed
    /// (also when no descriptor is left to list it with; `current()` tells those apart).
    /// The directory stream's own descriptor, `.` and `..` are not counted.
    public static func countOpenDescriptors() -> Int? {
        if case .counted(let n) = count() { return n }
        return nil
    }

    private enum Count {
        case counted(Int)
        /// opendir failed for want of a descriptor: the table is full.
        case exhausted
        case unavailable
    }

    private static func count() -> Count {
        for path in ["/proc/self/fd", "/dev/fd"] {
            guard let directory = opendir(path) else {
                if errno == EMFILE || errno == ENFILE { return .exhausted }
                continue
            }
            defer { closedir(directory) }
            var entries = 0
            while let entry = readdir(directory) {
                let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name -> Bool in
                    name.first == UInt8(ascii: ".")
                }
                if !isDot { entries += 1 }
            }
            // One of the entries is the descriptor opendir just opened.
            return .counted(entries > 0 ? entries - 1 : 0)
        }
        return .unavailable
    }

    private static func readLimits() -> rlimit? {
        var limits = rlimit()
        #if canImport(Glibc)
        let rc = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits)
        #else
        let rc = getrlimit(RLIMIT_NOFILE, &limits)
        #endif
        return rc == 0 ? limits : nil
    }

    private static func clampToInt(_ value: rlim_t) -> Int {
        value == rlim_t.max ? Int.max : Int(clamping: value)
    }
}
