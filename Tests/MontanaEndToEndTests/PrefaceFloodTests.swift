import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Admission under a flood, against one shared default demo (real `montana` processes): fresh,
/// valid prefaces from one /24 (127.0.0.2-9) at a front must not stop a user from another /24
/// (127.0.1.1) from opening circuits through that front to an exit, and an over-limit
/// connection gets silence, not a close.
final class PrefaceFloodTests: XCTestCase {
    nonisolated(unsafe) private static var demo: DemoHarness?
    nonisolated(unsafe) private static var setupError: (any Error)?
    private var group: MultiThreadedEventLoopGroup?

    /// Flood rate: the issue's figure (1000 fresh valid prefaces per second).
    static let floodPerSecond = 1000
    /// Flood length: 12 s keeps the test under 60 s on 2 cores (12,000 prefaces pre-built at
    /// ~0.2-1 ms of X-Wing encapsulation each, split over 2 threads) and is ~6x the time the
    /// front's /24 budget (burst 100 at 50/s) needs to reach its steady state.
    static let floodSeconds = 12.0
    /// Flooding sources: 8 addresses of one /24, as in the issue.
    static let floodSources = (2...9).map { "127.0.0.\($0)" }
    /// The legitimate user's address: another /24 (the demo client's default source).
    static let userSource = "127.0.1.1"
    /// Each flood thread keeps at most this many connections open (closing the oldest): a flooder
    /// holding descriptors, bounded so the test process stays far below its fd limit.
    static let openPerThread = 256
    /// The user starts once the flood has spent the /24's burst (100 at 50/s: 2 s).
    static let userHeadStart = 2.0
    /// One user attempt (circuit, Noise_PQ XX, ping) must finish within this; a healthy attempt
    /// takes well under a second even on 2 loaded cores.
    static let attemptTimeout = 10.0
    /// The issue's bar: at least 80 % of the user's attempts succeed during the flood.
    static let requiredSuccess = 0.8
    /// Fewer attempts than this would make the ratio meaningless.
    static let minimumAttempts = 5

    override class func setUp() {
        super.setUp()
        do { demo = try DemoHarness.start() } catch { setupError = error }
    }

    override class func tearDown() {
        demo?.stop()
        demo = nil
        super.tearDown()
    }

    override func tearDown() {
        try? group?.syncShutdownGracefully()
        group = nil
        super.tearDown()
    }

    private func running() throws -> DemoHarness {
        if let error = Self.setupError { throw error }
        guard let demo = Self.demo else { throw E2EError("the shared demo is not running") }
        return demo
    }

    private func loop() -> any EventLoop {
        let group = self.group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        return group.next()
    }

    /// `count` fresh prefaces naming `target`, sealed to `front`, built on both cores.
    private static func prefaces(_ count: Int, front: DemoStatus.City, target: DemoStatus.City) throws -> [[UInt8]] {
        guard let kem = Hex.decode(front.kemPK), let id = NodeID(hex: target.nodeID) else {
            throw E2EError("bad keys for \(front.name)/\(target.name) in the status JSON")
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: id.multihash), ext: RelayExtension(ts: WallClock.now(), purpose: .session))
        let box = FloodBox(count: count)
        let workers = 2
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in stride(from: w, to: count, by: workers) {
                box.set(i, (try? Preface.seal(.hop(hop), to: kem).bytes) ?? [])
            }
        }
        let built = box.all
        guard built.allSatisfy({ $0.count == Preface.size }) else { throw E2EError("could not seal the flood's prefaces") }
        return built
    }

    func test_prefaceFloodFromOneNetworkLeavesAnotherNetworksUserServed() throws {
        let demo = try running()
        let front = try demo.status.city("warsaw"), exit = try demo.status.city("berlin")
        let total = Int(Double(Self.floodPerSecond) * Self.floodSeconds)
        let built = Date()
        let prefaces = try Self.prefaces(total, front: front, target: exit)
        let buildTime = Date().timeIntervalSince(built)
        let rejectedBefore = try PrometheusText.scrape(front).value("montana_preface_rejections_total") ?? 0
        let cpuBefore = (front: ProcessCPU.seconds(front.pid), exit: ProcessCPU.seconds(exit.pid))

        let flood = Flood(prefaces: prefaces, port: front.transit.port, sources: Self.floodSources,
                          perSecond: Self.floodPerSecond, openPerThread: Self.openPerThread)
        flood.start()
        defer { flood.stop() }
        Thread.sleep(forTimeInterval: Self.userHeadStart)

        // The user: fresh circuits through the flooded front to the exit, one after another.
        let userAddress = try SocketAddress(ipAddress: Self.userSource, port: 0)
        var attempts = 0, successes = 0
        var failures: [String] = []
        let userDeadline = flood.startedAt.addingTimeInterval(Self.floodSeconds)
        while Date() < userDeadline || attempts < Self.minimumAttempts {
            attempts += 1
            let started = Date()
            do {
                let session = try ProbeSession.open(on: loop(), front: front, target: exit, identity: try IdentityKey.generate(),
                                                    localAddress: userAddress) { _ in
                    TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0)))])
                }
                defer { session.close() }
                guard try awaitFuture(session.established, timeout: Self.attemptTimeout, what: "handshake") != nil else {
                    throw E2EError("the handshake with \(exit.name) failed")
                }
                let probe = SecureRandom.bytes(32)
                let ping = try session.stream("/ipfs/ping/1.0.0", send: probe, expect: 32, timeout: Self.attemptTimeout)
                guard ping.received == probe else { throw E2EError("ping answered \(ping.received.count) bytes") }
                successes += 1
            } catch {
                failures.append(String(format: "attempt %d (%.1f s): %@", attempts, Date().timeIntervalSince(started), "\(error)"))
            }
            if attempts >= Self.minimumAttempts && Date() >= userDeadline { break }
        }
        flood.waitUntilDone(timeout: Self.floodSeconds + 10)
        let sent = flood.sent
        flood.stop()
        let floodTime = flood.elapsed
        let cpuAfter = (front: ProcessCPU.seconds(front.pid), exit: ProcessCPU.seconds(exit.pid))
        let rejected = (try PrometheusText.scrape(front).value("montana_preface_rejections_total") ?? 0) - rejectedBefore
        let frontCPU = (cpuAfter.front - cpuBefore.front) / max(floodTime, 0.001)
        let exitCPU = (cpuAfter.exit - cpuBefore.exit) / max(floodTime, 0.001)
        let summary = String(format: "flood: %d of %d prefaces sent in %.1f s (%.0f/s; built in %.1f s), %d connect failures; "
                             + "%.0f refused by %@; user: %d of %d attempts succeeded; CPU during the flood: %@ %.0f %% of a core, %@ %.0f %%",
                             sent, total, floodTime, Double(sent) / max(floodTime, 0.001), buildTime, flood.connectFailures,
                             rejected, front.name, successes, attempts, front.name, frontCPU * 100, exit.name, exitCPU * 100)
        print(summary)
        let context = "\(summary)\nfailures: \(failures.prefix(5))\n\(try PrometheusText.scrape(front).lines("montana_preface_rejections_total"))"

        // The flood was real: nearly all of it was delivered at about the issue's rate ...
        XCTAssertGreaterThanOrEqual(Double(sent), 0.9 * Double(total), "the flood must be delivered: \(context)")
        XCTAssertGreaterThanOrEqual(Double(sent) / max(floodTime, 0.001), 0.75 * Double(Self.floodPerSecond),
                                    "the flood must run at about \(Self.floodPerSecond)/s: \(context)")
        // ... and the front refused most of it (silently: over the /24's budgets).
        XCTAssertGreaterThanOrEqual(rejected, 0.5 * Double(sent), "the front must refuse most of the flood: \(context)")
        // The user from another /24 was served.
        XCTAssertGreaterThanOrEqual(attempts, Self.minimumAttempts, context)
        XCTAssertGreaterThanOrEqual(Double(successes), Self.requiredSuccess * Double(attempts),
                                    "at least 80 % of the user's circuits must succeed during the flood: \(context)\n\(demo.diagnostics(1000))")
    }

    func test_prefacesOverTheSourceBudgetGetNoAnswerAndTheConnectionStaysOpen() throws {
        let demo = try running()
        let front = try demo.status.city("warsaw")
        // A source of its own /24 (so the other test's flood does not matter) sends more valid
        // prefaces than its burst (40) at once; each names the front itself (a control session).
        let count = 60
        let prefaces = try Self.prefaces(count, front: front, target: front)
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for preface in prefaces {
            guard let fd = RawSocket.connect(from: "127.0.2.1", port: front.transit.port, timeout: 2) else {
                return XCTFail("cannot connect from 127.0.2.1 to \(front.name)")
            }
            fds.append(fd)
            XCTAssertTrue(RawSocket.sendAll(fd, preface), "send to \(front.name)")
        }
        // Answers come within milliseconds; after a second, look at every connection at once
        // (the discard timer is 10-60 s, so the 5 s watch below starts well inside it).
        Thread.sleep(forTimeInterval: 1)
        var answered: [Int32] = [], silent: [Int32] = []
        for fd in fds {
            let seen = RawSocket.drain(fd)
            if seen.received.count == Preface.responseSize {
                answered.append(fd)
            } else if seen.received.isEmpty && !seen.closedByPeer {
                silent.append(fd)
            }
        }
        let context = "answered \(answered.count), silent \(silent.count) of \(count); "
            + (try PrometheusText.scrape(front).lines("montana_preface_rejections_total"))
        XCTAssertGreaterThanOrEqual(answered.count, 30, "prefaces within the source's burst are answered: \(context)")
        XCTAssertLessThanOrEqual(answered.count, 50, "beyond the burst (40, +20/s) they are not: \(context)")
        XCTAssertGreaterThanOrEqual(silent.count, 10, "the rest get silence: \(context)")
        // An over-limit connection is discarded like garbage: no byte and no close for at least 5 s.
        guard let probe = silent.last else { return }
        let watched = RawSocket.receive(probe, window: 5, stopAfter: 1)
        XCTAssertEqual(watched.received.count, 0, "no answer to an over-limit preface: \(context)")
        XCTAssertFalse(watched.closedByPeer, "the over-limit connection must stay open ≥ 5 s, got closed after \(watched.elapsed) s: \(context)")
        XCTAssertTrue(ProcessKiller.isAlive(front.pid), "\(front.name) is alive")
    }
}

/// Slots filled from several threads.
private final class FloodBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [[UInt8]]

    init(count: Int) { items = Array(repeating: [], count: count) }

    func set(_ i: Int, _ value: [UInt8]) {
        lock.lock()
        items[i] = value
        lock.unlock()
    }

    var all: [[UInt8]] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}

/// Two paced threads that each connect from the flood sources in turn, send one pre-built
/// preface, and keep a bounded ring of connections open. `stop()` closes every descriptor.
private final class Flood: @unchecked Sendable {
    private let prefaces: [[UInt8]]
    private let port: Int
    private let sources: [String]
    private let perSecond: Int
    private let openPerThread: Int
    private let lock = NSLock()
    private var stopped = false
    private var sentCount = 0
    private var failures = 0
    private var finished = 0
    private var open: [[Int32]] = [[], []]
    private(set) var startedAt = Date()
    private var endedAt: Date?
    static let threads = 2

    init(prefaces: [[UInt8]], port: Int, sources: [String], perSecond: Int, openPerThread: Int) {
        self.prefaces = prefaces
        self.port = port
        self.sources = sources
        self.perSecond = perSecond
        self.openPerThread = openPerThread
    }

    var sent: Int { lock.lock(); defer { lock.unlock() }; return sentCount }
    var connectFailures: Int { lock.lock(); defer { lock.unlock() }; return failures }
    var elapsed: TimeInterval { lock.lock(); defer { lock.unlock() }; return (endedAt ?? Date()).timeIntervalSince(startedAt) }
    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    func start() {
        startedAt = Date()
        for t in 0..<Self.threads {
            Thread.detachNewThread { self.run(thread: t) }
        }
    }

    private func run(thread t: Int) {
        let interval = Double(Self.threads) / Double(perSecond)
        var n = 0
        for i in stride(from: t, to: prefaces.count, by: Self.threads) {
            if isStopped { break }
            let due = startedAt.addingTimeInterval(Double(n) * interval)
            n += 1
            let wait = due.timeIntervalSinceNow
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            guard let fd = RawSocket.connect(from: sources[i % sources.count], port: port, timeout: 0.5) else {
                lock.lock(); failures += 1; lock.unlock()
                continue
            }
            let ok = RawSocket.sendAll(fd, prefaces[i])
            lock.lock()
            if ok { sentCount += 1 } else { failures += 1 }
            if stopped {
                lock.unlock()
                close(fd)
                break
            }
            open[t].append(fd)
            if open[t].count > openPerThread {
                let oldest = open[t].removeFirst()
                lock.unlock()
                close(oldest)
            } else {
                lock.unlock()
            }
        }
        lock.lock()
        finished += 1
        if finished == Self.threads { endedAt = Date() }
        lock.unlock()
    }

    func waitUntilDone(timeout: TimeInterval) {
        _ = poll(timeout: timeout, interval: 0.1) { self.lock.lock(); defer { self.lock.unlock() }; return self.finished == Self.threads }
    }

    /// Stops the threads and closes every connection they hold. Safe to call twice.
    func stop() {
        lock.lock()
        stopped = true
        if endedAt == nil { endedAt = Date() }
        let fds = open.flatMap { $0 }
        open = [[], []]
        lock.unlock()
        fds.forEach { close($0) }
    }
}

/// Blocking IPv4 sockets bound to a chosen loopback source address.
enum RawSocket {
    static func connect(from source: String, port: Int, timeout: TimeInterval) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        local.sin_port = 0
        var remote = Net.loopback(port: port)
        let ok = withUnsafePointer(to: &local) { l in
            l.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && withUnsafePointer(to: &remote) { r in
            r.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            close(fd)
            return nil
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// What is already waiting on `fd` (never blocks).
    static func drain(_ fd: Int32) -> Net.Exchange {
        var result = Net.Exchange()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                result.received += buffer[0..<n]
                continue
            }
            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { result.closedByPeer = true }
            if n < 0 && errno == EINTR { continue }
            return result
        }
    }

    /// What arrives on `fd` within `window` (stopping early after `stopAfter` bytes or a close).
    static func receive(_ fd: Int32, window: TimeInterval, stopAfter: Int) -> Net.Exchange {
        var result = Net.Exchange()
        let start = Date()
        let deadline = start.addingTimeInterval(window)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline && result.received.count < stopAfter {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000)))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 {
                result.closedByPeer = true
                break
            }
            result.received += buffer[0..<n]
        }
        result.elapsed = Date().timeIntervalSince(start)
        return result
    }
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
enum ProcessCPU {
    static func seconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based) → indices 11, 12.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
