import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

extension Attacks {
    /// Connects from `source` (bound before connect), writes `bytes`, and closes after `hold`
    /// seconds or when the node closes. Returns at once; `done` counts completions.
    static func spray(on loop: any EventLoop, source: String, to target: DemoTarget.Address, bytes: [UInt8], hold: TimeAmount,
                      counters: NIOLockedBox<FloodCounters>) {
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AnswerCounter(counters: counters)) }
            }
        guard let local = try? SocketAddress(ipAddress: source, port: 0) else { return }
        bootstrap.bind(to: local).connect(host: target.host, port: target.port).whenComplete { result in
            switch result {
            case .failure:
                counters.update { $0.connectFailures += 1 }
            case .success(let channel):
                counters.update { $0.connected += 1 }
                channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
                channel.eventLoop.scheduleTask(in: hold) { channel.close(promise: nil) }
            }
        }
    }

    /// `rate` fresh, valid prefaces per second, each on its own connection from one of
    /// `sources`, naming `city` itself, for `seconds`. Meanwhile a legitimate user (the demo's
    /// proxy, whose carriers come from another /24) fetches through the same front, and a fresh
    /// session from 127.0.1.1 is tried each second.
    func prefaceFlood(rate: Int, seconds: Double, sources: [String], city: DemoTarget.City) throws -> AttackReport {
        guard let kem = Hex.decode(city.kemPK), let id = NodeID(hex: city.nodeID) else { throw AbuseError("bad keys for \(city.name)") }
        let counters = NIOLockedBox(FloodCounters())
        let stop = NIOLockedBox(false)
        // The prefaces are sealed ahead in a pool per second of flood, on another thread, so the
        // flood itself is not limited by our own encapsulation cost.
        let pool = PrefacePool(kem: kem, target: id, alliance: city.allianceUUID)
        pool.fill(count: min(rate * 2, 4000))
        let producer = Thread { while !stop.get() { pool.fill(count: rate / 4) } }
        producer.start()
        var fetches = 0, fetched = 0, sessionsTried = 0, sessionsOK = 0
        let legitLoop = userGroup.next()
        let rss = measured(city) {
            let start = Date()
            let flooder = Thread {
                var sent = 0
                while Date().timeIntervalSince(start) < seconds {
                    let due = Int(Date().timeIntervalSince(start) * Double(rate))
                    while sent < due {
                        let preface = pool.take()
                        Self.spray(on: group.next(), source: sources[sent % sources.count], to: city.transit, bytes: preface,
                                   hold: .milliseconds(1500), counters: counters)
                        sent += 1
                    }
                    usleep(2000)
                }
                counters.update { $0.sent = sent }
            }
            flooder.start()
            Thread.sleep(forTimeInterval: 1)
            while Date().timeIntervalSince(start) < seconds {
                fetches += 1
                if LegitimateTraffic.fetch(socks: demo.client.socks, url: demo.site.url, timeout: 5) { fetched += 1 }
                if sessionsTried < Int(Date().timeIntervalSince(start)) {
                    sessionsTried += 1
                    if let s = try? AttackSession.open(on: legitLoop, to: city, source: "127.0.1.1", timeout: 5) {
                        sessionsOK += 1
                        s.close()
                    }
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
            while counters.get().sent == 0 { Thread.sleep(forTimeInterval: 0.05) }
        }
        stop.set(true)
        let c = counters.get()
        let share = fetches == 0 ? 0 : Double(fetched) / Double(fetches)
        return AttackReport(
            name: "preface flood: \(rate)/s fresh valid prefaces from \(sources.first ?? "")…\(sources.last ?? "") (\(sources.count) addresses) for \(Int(seconds)) s at \(city.name)",
            limit: "per-prefix preface buckets before decapsulation, per-prefix handshake share and replay-memory share; over-limit connections read-and-discard (no answer, no early close)",
            rssBeforeKiB: rss.before, rssPeakKiB: rss.peak, rssAfterKiB: rss.after,
            legitimate: "\(fetched)/\(fetches) fetches (\(Int(share * 100)) %) through the proxy; \(sessionsOK)/\(sessionsTried) fresh sessions from 127.0.1.1",
            detail: "\(c.sent) prefaces sent, \(c.connected) connected, \(c.answered) answered by the node (80-byte OK), \(c.connectFailures) connects failed",
            passed: share >= 0.8 && sessionsOK * 5 >= sessionsTried * 4)
    }

    /// `rate` connections per second each carrying 1632 random bytes, for `seconds`: the CPU the
    /// node spends rejecting them (they open nothing: no answer, read-and-discard).
    func badPrefaces(rate: Int, seconds: Double, sources: [String], city: DemoTarget.City) throws -> AttackReport {
        let counters = NIOLockedBox(FloodCounters())
        let probe = ProcessProbe(pid: city.pid)
        var garbage: [[UInt8]] = []
        for _ in 0..<256 { garbage.append((0..<Preface.size).map { _ in UInt8.random(in: 0...255) }) }
        let cpuBefore = probe.cpuSeconds()
        let start = Date()
        let rss = measured(city, settle: 1) {
            var sent = 0
            while Date().timeIntervalSince(start) < seconds {
                let due = Int(Date().timeIntervalSince(start) * Double(rate))
                while sent < due {
                    Self.spray(on: group.next(), source: sources[sent % sources.count], to: city.transit,
                               bytes: garbage[sent % garbage.count], hold: .milliseconds(500), counters: counters)
                    sent += 1
                }
                usleep(2000)
            }
            counters.update { $0.sent = sent }
        }
        let elapsed = Date().timeIntervalSince(start)
        let cpu = probe.cpuSeconds() - cpuBefore
        let c = counters.get()
        let legit = (0..<3).filter { _ in LegitimateTraffic.fetch(socks: demo.client.socks, url: demo.site.url) }.count
        let perSecond = Double(c.sent) / max(seconds, 0.001)
        return AttackReport(
            name: "bad prefaces: \(rate)/s connections with 1632 random bytes for \(Int(seconds)) s at \(city.name)",
            limit: "cheap checks first; a preface that does not open gets no answer (read-and-discard)",
            rssBeforeKiB: rss.before, rssPeakKiB: rss.peak, rssAfterKiB: rss.after,
            legitimate: "\(legit)/3 fetches afterwards",
            detail: String(format: "%d sent (%.0f/s), %d answered; node CPU %.2f s over %.1f s = %.1f %% of one core at %.0f bad prefaces/s (%.1f ms CPU per 1000)",
                           c.sent, perSecond, c.answered, cpu, elapsed, 100 * cpu / elapsed, perSecond, 1000 * cpu / max(Double(c.sent), 1) * 1000),
            passed: c.answered == 0 && legit == 3)
    }
}

struct FloodCounters: Sendable {
    var sent = 0
    var connected = 0
    var answered = 0
    var connectFailures = 0
}

/// Counts connections on which the node answered anything.
final class AnswerCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let counters: NIOLockedBox<FloodCounters>
    private var counted = false
    init(counters: NIOLockedBox<FloodCounters>) { self.counters = counters }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !counted {
            counted = true
            counters.update { $0.answered += 1 }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Fresh prefaces sealed ahead of use (each has its own X-Wing encapsulation, so each is new to
/// the node's replay memory).
final class PrefacePool: @unchecked Sendable {
    private let kem: [UInt8]
    private let target: NodeID
    private let alliance: [UInt8]?
    private let lock = NSLock()
    private var ready: [[UInt8]] = []

    init(kem: [UInt8], target: NodeID, alliance: [UInt8]?) {
        self.alliance = alliance
        self.kem = kem
        self.target = target
    }

    func fill(count: Int) {
        var made: [[UInt8]] = []
        for _ in 0..<max(1, count) {
            let hop = HopMessage(type: .connect, peer: RelayPeer(id: target.multihash), ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: .session))
            if let sealed = try? Preface.seal(.hop(hop), to: kem) { made.append(sealed.bytes) }
        }
        lock.lock()
        ready += made
        if ready.count > 20_000 { ready.removeFirst(ready.count - 20_000) }
        lock.unlock()
    }

    /// A fresh preface, or (if the producer fell behind) a reused one — counted by the node as a
    /// replay, which is still an attack on it.
    func take() -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        if let p = ready.popLast() {
            lastTaken = p
            return p
        }
        return lastTaken
    }

    private var lastTaken: [UInt8] = []
}
