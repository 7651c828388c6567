import CMontanaLinux
import Foundation

/// The front's kernel relay: once a relayed circuit carries bulk data, its two TCP sockets leave
/// the event loop and one thread moves the bytes with `splice(2)` through a pipe per direction —
/// socket to pipe to socket, never through user memory (what HAProxy and Xray do for raw TCP).
/// The bytes are ciphertext the front never reads anyway.
///
/// Bounds: at most `maxPairs` circuits (beyond, circuits stay on the userspace `SpliceHandler`);
/// each holds two pipes of `pipeSize` bytes (kernel memory, 512 KiB per circuit at most) and four
/// descriptors. Backpressure is the kernel's: a direction reads its source only while its pipe has
/// room, and the pipe drains only as fast as the destination socket accepts.
public final class KernelSplicer: @unchecked Sendable {
    /// Capacity asked for each direction's pipe (F_SETPIPE_SZ, best effort; the default is 64 KiB).
    public static let pipeSize = 256 * 1024
    /// Circuits relayed in the kernel at once.
    public static let maxPairs = 4096

    private let epoll: CInt
    private let wake: CInt
    private let lock = NSLock()
    private var incoming: [Pair] = []
    private var stopping = false
    private var count = 0
    private var thread: Thread?
    /// Only the relay thread touches these.
    private var pairs: [CInt: Pair] = [:]

    /// Nil where the kernel relay is not available (not Linux, or epoll/eventfd failed).
    public static func make(maxPairs: Int = KernelSplicer.maxPairs) -> KernelSplicer? {
        guard montana_kernel_splice_available() == 1 else { return nil }
        let epoll = montana_epoll_create()
        guard epoll >= 0 else { return nil }
        let wake = montana_eventfd()
        guard wake >= 0, montana_epoll_ctl(epoll, 1, wake, montana_epollin()) == 0 else {
            _ = montana_close(epoll)
            if wake >= 0 { _ = montana_close(wake) }
            return nil
        }
        return KernelSplicer(epoll: epoll, wake: wake, maxPairs: maxPairs)
    }

    private let pairLimit: Int

    private init(epoll: CInt, wake: CInt, maxPairs: Int) {
        self.epoll = epoll
        self.wake = wake
        pairLimit = maxPairs
    }

    deinit {
        _ = montana_close(epoll)
        _ = montana_close(wake)
    }

    /// Circuits currently relayed in the kernel.
    public var activePairs: Int { lock.withLock { count } }

    /// Whether another circuit may move to the kernel now.
    public var hasRoom: Bool { lock.withLock { !stopping && count < pairLimit } }

    /// Takes ownership of two connected, non-blocking sockets and relays between them until both
    /// directions ended (half-closes are forwarded) or either fails; then closes both and calls
    /// `onEnd` (on the relay thread). `onBytes` is called with the bytes moved, from the relay
    /// thread. False (and nothing taken) when over `maxPairs`, stopping, or out of descriptors.
    public func add(_ a: CInt, _ b: CInt, onBytes: @escaping @Sendable (Int) -> Void,
                    onEnd: @escaping @Sendable () -> Void) -> Bool {
        guard let ab = Direction(from: a, to: b) else { return false }
        guard let ba = Direction(from: b, to: a) else {
            ab.closePipe()
            return false
        }
        let pair = Pair(a: a, b: b, ab: ab, ba: ba, onBytes: onBytes, onEnd: onEnd)
        let start: Bool = lock.withLock {
            guard !stopping, count < pairLimit else { return false }
            count += 1
            incoming.append(pair)
            if thread == nil {
                let thread = Thread { [self] in run() }
                thread.name = "montana-splice"
                self.thread = thread
                thread.start()
            }
            return true
        }
        guard start else {
            ab.closePipe()
            ba.closePipe()
            return false
        }
        _ = montana_eventfd_signal(wake)
        return true
    }

    /// Closes every relayed circuit (their `onEnd` runs) and stops the thread.
    public func shutdown() {
        lock.withLock { stopping = true }
        _ = montana_eventfd_signal(wake)
    }

    // MARK: The relay thread

    private func run() {
        var fds = [Int32](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let n = montana_epoll_wait(epoll, &fds, &events, 64, -1)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in 0..<Int(n) {
                if fds[i] == wake {
                    _ = montana_eventfd_drain(wake)
                    let (added, stop) = lock.withLock { () -> ([Pair], Bool) in
                        defer { incoming = [] }
                        return (incoming, stopping)
                    }
                    for pair in added {
                        pairs[pair.a] = pair
                        pairs[pair.b] = pair
                        service(pair, events: 0)
                    }
                    if stop {
                        for pair in Array(pairs.values) { finish(pair) }
                        lock.withLock { thread = nil }
                        return
                    }
                } else if let pair = pairs[fds[i]] {
                    service(pair, events: events[i])
                }
            }
        }
    }

    private func service(_ pair: Pair, events: UInt32) {
        guard !pair.finished else { return }
        let forward = pair.ab.pump()
        let backward = pair.ba.pump()
        let moved = forward.moved + backward.moved
        if moved > 0 { pair.onBytes(moved) }
        if forward.failed || backward.failed || (pair.ab.done && pair.ba.done) {
            finish(pair)
            return
        }
        // A hang-up or error with nothing to do would otherwise wake the thread forever.
        if events & montana_epollerr_hup() != 0, !forward.changed, !backward.changed {
            finish(pair)
            return
        }
        pair.updateInterest(epoll: epoll)
    }

    private func finish(_ pair: Pair) {
        guard !pair.finished else { return }
        pair.finished = true
        pairs[pair.a] = nil
        pairs[pair.b] = nil
        pair.close(epoll: epoll)
        lock.withLock { count -= 1 }
        pair.onEnd()
    }

    /// One direction: its source socket, the pipe, its destination socket.
    private final class Direction {
        let source: CInt
        let destination: CInt
        let pipeRead: CInt
        let pipeWrite: CInt
        let capacity: Int
        var inPipe = 0
        var sourceEnded = false
        var shutDown = false
        var done: Bool { shutDown }

        init?(from source: CInt, to destination: CInt) {
            var fds: [CInt] = [-1, -1]
            let capacity = montana_pipe(&fds, CInt(KernelSplicer.pipeSize))
            guard capacity > 0 else { return nil }
            self.source = source
            self.destination = destination
            pipeRead = fds[0]
            pipeWrite = fds[1]
            self.capacity = Int(capacity)
        }

        func closePipe() {
            _ = montana_close(pipeRead)
            _ = montana_close(pipeWrite)
        }

        /// Moves what it can without blocking. `changed`: bytes moved or an end reached.
        func pump() -> (moved: Int, changed: Bool, failed: Bool) {
            var moved = 0
            var changed = false
            // A short splice means the source (or the destination) had no more for now: asking
            // again would only return EAGAIN, so the next epoll wakeup does it.
            var sourceDrained = false
            var destinationFull = false
            while true {
                var progress = false
                if !sourceEnded, !sourceDrained, inPipe < capacity {
                    let want = capacity - inPipe
                    let n = montana_splice(source, pipeWrite, want)
                    if n > 0 {
                        inPipe += n
                        moved += n
                        progress = true
                        if n < want { sourceDrained = true }
                    } else if n == 0 {
                        sourceEnded = true
                        progress = true
                    } else if errno != EAGAIN && errno != EINTR {
                        return (moved, true, true)
                    } else {
                        sourceDrained = true
                    }
                }
                if inPipe > 0, !destinationFull {
                    let want = inPipe
                    let n = montana_splice(pipeRead, destination, want)
                    if n > 0 {
                        inPipe -= min(n, inPipe)
                        progress = true
                        if n < want { destinationFull = true }
                    } else if n < 0, errno != EAGAIN && errno != EINTR {
                        return (moved, true, true)
                    } else if n < 0 {
                        destinationFull = true
                    }
                }
                if sourceEnded, inPipe == 0, !shutDown {
                    shutDown = true
                    _ = montana_shutdown_write(destination)
                    progress = true
                }
                changed = changed || progress
                if !progress { return (moved, changed, false) }
            }
        }

        var wantsRead: Bool { !sourceEnded && inPipe < capacity }
        var wantsWrite: Bool { inPipe > 0 }
    }

    private final class Pair {
        let a: CInt
        let b: CInt
        let ab: Direction
        let ba: Direction
        let onBytes: @Sendable (Int) -> Void
        let onEnd: @Sendable () -> Void
        var finished = false
        private var interestA: UInt32 = 0
        private var interestB: UInt32 = 0

        init(a: CInt, b: CInt, ab: Direction, ba: Direction, onBytes: @escaping @Sendable (Int) -> Void,
             onEnd: @escaping @Sendable () -> Void) {
            self.a = a
            self.b = b
            self.ab = ab
            self.ba = ba
            self.onBytes = onBytes
            self.onEnd = onEnd
        }

        func updateInterest(epoll: CInt) {
            let wantA = (ab.wantsRead ? montana_epollin() : 0) | (ba.wantsWrite ? montana_epollout() : 0)
            let wantB = (ba.wantsRead ? montana_epollin() : 0) | (ab.wantsWrite ? montana_epollout() : 0)
            Self.apply(epoll: epoll, fd: a, old: &interestA, new: wantA)
            Self.apply(epoll: epoll, fd: b, old: &interestB, new: wantB)
        }

        /// A socket with nothing to wait for leaves the epoll set (a hang-up cannot be masked).
        private static func apply(epoll: CInt, fd: CInt, old: inout UInt32, new: UInt32) {
            guard old != new else { return }
            if new == 0 {
                _ = montana_epoll_ctl(epoll, 2, fd, 0)
            } else {
                _ = montana_epoll_ctl(epoll, old == 0 ? 1 : 3, fd, new)
            }
            old = new
        }

        func close(epoll: CInt) {
            if interestA != 0 { _ = montana_epoll_ctl(epoll, 2, a, 0) }
            if interestB != 0 { _ = montana_epoll_ctl(epoll, 2, b, 0) }
            interestA = 0
            interestB = 0
            ab.closePipe()
            ba.closePipe()
            _ = montana_close(a)
            _ = montana_close(b)
        }
    }
}
