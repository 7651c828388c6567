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
    private static let shared = SharedDemo()
    private let loops = OnDemandEventLoop()

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
    /// holding descriptors (512 in all), bounded so the test process stays far below its fd limit.
    static let openPerThread = 128
    /// The user starts once the flood has spent the /24's burst (100 at 50/s: 2 s).
    static let userHeadStart = 2.0
    /// One user attempt (circuit, Noise_PQ XX, ping) must finish within this; a healthy attempt
    /// takes well under a second even on 2 loaded cores.
    static let attemptTimeout = 10.0
    /// The issue's bar: at least 80 % of the user's attempts succeed during the flood.
    static let requiredSuccess = 0.8
    /// Fewer attempts than this would make the ratio meaningless.
    static let minimumAttempts = 5
    /// However slow the node under test, the flood stops this long after its planned end and the
    /// user's attempts this long after the flood's: the test stays bounded when admission fails.
    static let floodGrace = 3.0
    static let userGrace = 20.0

    override class func setUp() { super.setUp(); shared.start() }
    override class func tearDown() { shared.stop(); super.tearDown() }

    override func tearDown() {
        loops.shutdown()
        super.tearDown()
    }

    /// `count` fresh prefaces naming `target`, sealed to `front`, built on both cores.
    private static func prefaces(_ count: Int, front: DemoStatus.City, target: DemoStatus.City) throws -> [[UInt8]] {
        guard let kem = Hex.decode(front.kemPK), let id = NodeID(hex: target.nodeID) else {
            throw E2EError("bad keys for \(front.name)/\(target.name) in the status JSON")
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: id.multihash), ext: RelayExtension(ts: WallClock.now(), alliance: front.allianceUUID, purpose: .session))
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
        let demo = try Self.shared.running()
        let front = try demo.status.city("warsaw"), exit = try demo.status.city("berlin")
        let total = Int(Double(Self.floodPerSecond) * Self.floodSeconds)
        let built = Date()
        let prefaces = try Self.prefaces(total, front: front, target: exit)
        let buildTime = Date().timeIntervalSince(built)
        let rejectedBefore = try PrometheusText.scrape(front).value("montana_preface_rejections_total") ?? 0
        let cpuBefore = (front: ProcessCPU.seconds(front.pid), exit: ProcessCPU.seconds(exit.pid))

        let flood = Flood(prefaces: prefaces, host: front.transit.host, port: front.transit.port, sources: Self.floodSources,
                          perSecond: Self.floodPerSecond, openPerThread: Self.openPerThread,
                          deadline: Self.floodSeconds + Self.floodGrace)
        flood.start()
        defer { flood.stop() }
        Thread.sleep(forTimeInterval: Self.userHeadStart)

        // The user: fresh circuits through the flooded front to the exit, one after another.
        let userAddress = try SocketAddress(ipAddress: Self.userSource, port: 0)
        var attempts = 0, successes = 0
        var failures: [String] = []
        let userDeadline = flood.startedAt.addingTimeInterval(Self.floodSeconds)
        let userHardStop = userDeadline.addingTimeInterval(Self.userGrace)
        while (Date() < userDeadline || attempts < Self.minimumAttempts) && Date() < userHardStop {
            attempts += 1
            let started = Date()
            do {
                let session = try ProbeSession.open(on: loops.next(), front: front, target: exit, identity: try IdentityKey.generate(),
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
        flood.waitUntilDone(timeout: Self.floodSeconds + Self.floodGrace + 2)
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
        // (At least half the rate: a loaded CI machine slows the sender, not the point of the test;
        // a front without per-prefix admission saturates and takes fewer than 300/s.)
        XCTAssertGreaterThanOrEqual(Double(sent) / max(floodTime, 0.001), 0.5 * Double(Self.floodPerSecond),
                                    "the flood must run at a real rate (≥ half of \(Self.floodPerSecond)/s): \(context)")
        // ... and the front refused most of it (silently: over the /24's budgets).
        XCTAssertGreaterThanOrEqual(rejected, 0.5 * Double(sent), "the front must refuse most of the flood: \(context)")
        // The user from another /24 was served.
        XCTAssertGreaterThanOrEqual(attempts, Self.minimumAttempts, context)
        XCTAssertGreaterThanOrEqual(Double(successes), Self.requiredSuccess * Double(attempts),
                                    "at least 80 % of the user's circuits must succeed during the flood: \(context)\n\(demo.diagnostics(1000))")
    }

    /// Sorts before the flood test on purpose: it measures a quiet front.
    func test_excessPrefacesFromOneSourceGetNoAnswerAndTheConnectionsStayOpen() throws {
        let demo = try Self.shared.running()
        let front = try demo.status.city("warsaw")
        // A source of its own /24 sends more valid prefaces than its burst (40) at once, staying
        // within the per-source circuit cap (64); each names the front itself (a control session).
        let count = 64
        let prefaces = try Self.prefaces(count, front: front, target: front)
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        let sendStart = Date()
        for preface in prefaces {
            guard let fd = Net.connect(from: "127.0.2.1", host: front.transit.host, port: front.transit.port, timeout: 2) else {
                return XCTFail("cannot connect from 127.0.2.1 to \(front.name)")
            }
            fds.append(fd)
            XCTAssertTrue(Net.sendAll(fd, preface), "send to \(front.name)")
        }
        // Answers come within milliseconds on a quiet node; collect until no new one arrives for
        // a second (at most `answerWindow`), so the 5 s watch below still ends before the 10 s
        // minimum of the discard timer.
        var answered: [Int32] = [], silent: [Int32] = []
        var pending = fds
        var received: [Int32: [UInt8]] = [:]
        let answerWindow = 4.0
        let started = Date()
        var lastAnswer = Date()
        while Date().timeIntervalSince(started) < answerWindow && Date().timeIntervalSince(lastAnswer) < 1 {
            Thread.sleep(forTimeInterval: 0.1)
            for fd in pending {
                let seen = Net.drain(fd)
                if !seen.received.isEmpty { received[fd, default: []] += seen.received }
                if (received[fd]?.count ?? 0) >= Preface.responseSize {
                    answered.append(fd)
                    lastAnswer = Date()
                }
            }
            pending.removeAll { answered.contains($0) }
        }
        for fd in pending {
            let seen = Net.drain(fd)
            if seen.received.isEmpty && received[fd] == nil && !seen.closedByPeer { silent.append(fd) }
        }
        // The source's bucket holds 40 and refills at 20/s while the node works through them; the
        // node cannot have spread them over more than the time until the last answer was seen.
        let spread = lastAnswer.timeIntervalSince(sendStart)
        let allowed = 40 + Int((20 * spread).rounded(.up)) + 1
        let context = String(format: "answered %d, silent %d of %d within %.2f s (allowed %d); ", answered.count, silent.count, count,
                             spread, allowed) + (try PrometheusText.scrape(front).lines("montana_preface_rejections_total"))
        XCTAssertGreaterThanOrEqual(answered.count, 30, "prefaces within the source's burst are answered: \(context)")
        XCTAssertLessThanOrEqual(answered.count, min(allowed, count - 1), "beyond the burst (40, +20/s) they are not: \(context)")
        XCTAssertEqual(silent.count, count - answered.count, "the rest get silence, not a close: \(context)")
        // An over-limit connection is discarded like garbage: no byte and no close for at least 5 s.
        guard let probe = silent.last else { return }
        let watched = Net.receive(probe, window: 5, stopAfter: 1)
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

/// Paced threads (4: one connect stalled by a full accept queue must not stall the whole flood)
/// that each connect from the flood sources in turn, send one pre-built
/// preface, and keep a bounded ring of connections open. `stop()` closes every descriptor.
private final class Flood: @unchecked Sendable {
    private let prefaces: [[UInt8]]
    private let port: Int
    private let host: String
    private let sources: [String]
    private let perSecond: Int
    private let openPerThread: Int
    /// Seconds after the start at which the threads give up, sent or not.
    private let deadline: TimeInterval
    private let lock = NSLock()
    private var stopped = false
    private var sentCount = 0
    private var failures = 0
    private var finished = 0
    private var open: [[Int32]] = Array(repeating: [], count: Flood.threads)
    private(set) var startedAt = Date()
    private var endedAt: Date?
    static let threads = 4

    init(prefaces: [[UInt8]], host: String, port: Int, sources: [String], perSecond: Int, openPerThread: Int, deadline: TimeInterval) {
        self.deadline = deadline
        self.prefaces = prefaces
        self.port = port
        self.host = host
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
            if isStopped || Date().timeIntervalSince(startedAt) > deadline { break }
            let due = startedAt.addingTimeInterval(Double(n) * interval)
            n += 1
            let wait = due.timeIntervalSinceNow
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            guard let fd = Net.connect(from: sources[i % sources.count], host: host, port: port, timeout: 0.5) else {
                lock.lock(); failures += 1; lock.unlock()
                continue
            }
            let ok = Net.sendAll(fd, prefaces[i])
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
        open = Array(repeating: [], count: Self.threads)
        lock.unlock()
        fds.forEach { close($0) }
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
