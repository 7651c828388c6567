import Foundation
import MontanaCrypto
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// The attacks of issue 6, each against a running demo, each reporting the limit that applied,
/// the node's RSS before / peak / after and whether legitimate traffic kept working.
struct Attacks {
    let demo: DemoTarget
    let group: MultiThreadedEventLoopGroup
    /// The legitimate user's own event loop: its sessions must not queue behind the attack's.
    let userGroup: MultiThreadedEventLoopGroup
    /// The RSS growth an attack may cause (issue 6: less than 64 MiB above the start).
    static let rssBudgetKiB = 64 * 1024

    private func legitimateCheck(_ tries: Int = 5) -> (ok: Int, of: Int) {
        var ok = 0
        for _ in 0..<tries where LegitimateTraffic.fetch(socks: demo.client.socks, url: demo.site.url) { ok += 1 }
        return (ok, tries)
    }

    /// A fresh control session from another /24 (127.0.1.1) to `city` that gets its ping echoed:
    /// the attacked node still serves others.
    func controlCheck(_ city: DemoTarget.City) -> Bool {
        let loop = userGroup.next()
        guard let session = try? AttackSession.open(on: loop, to: city, source: "127.0.1.1", timeout: 10) else { return false }
        defer { session.close() }
        let echoed = loop.makePromise(of: Void.self)
        loop.execute {
            var got = 0
            let stream = session.mux.openStream(protocol: "/ipfs/ping/1.0.0") { ok in if !ok { echoed.fail(AbuseError("ping refused")) } }
            stream?.onData = { b in
                got += b.readableBytes
                stream?.consumed(b.readableBytes)
                if got >= 32 { echoed.succeed() }
            }
            stream?.write(ByteBuffer(repeating: 7, count: 32))
        }
        return (try? wait(echoed.futureResult, timeout: 10)) != nil
    }

    /// What the legitimate users saw after an attack on `city`: fetches through the proxy, and a
    /// fresh control session from another /24.
    private func servedOthers(_ city: DemoTarget.City) -> (line: String, ok: Bool) {
        let legit = legitimateCheck()
        let served = controlCheck(city)
        return ("\(legit.ok)/\(legit.of) fetches through the demo proxy; a fresh control session to \(city.name) from 127.0.1.1 "
                    + (served ? "got its ping echoed" : "was NOT served"), legit.ok == legit.of && served)
    }

    /// Runs `body` while sampling `city`'s RSS; the "after" figure is taken `settle` seconds later.
    func measured(_ city: DemoTarget.City, settle: UInt32 = 3, _ body: () throws -> Void) rethrows -> (before: Int, peak: Int, after: Int) {
        let probe = ProcessProbe(pid: city.pid)
        let before = probe.rssKiB()
        probe.startSampling()
        try body()
        sleep(settle)
        let peak = probe.stopSampling()
        return (before, peak, probe.rssKiB())
    }

    // MARK: ping hoarding

    /// Control sessions to the front-only city; on each, ping streams written as fast as the
    /// windows allow and never read back (no window update ever). Goes on until `bytes` were
    /// offered or `seconds` passed, opening new streams and sessions whenever the node stops
    /// taking more.
    func pingHoarding(bytes: Int, seconds: Double) throws -> AttackReport {
        guard let city = demo.frontOnly else { throw AbuseError("the demo has no front-only city") }
        let loop = group.next()
        var offered = 0
        var accepted = 0
        var sessions = 0
        var sessionFailures = 0
        let deadline = Date().addingTimeInterval(seconds)
        let rss = try measured(city) {
            while offered < bytes, Date() < deadline {
                let session: AttackSession
                do {
                    session = try AttackSession.open(on: loop, to: city)
                    sessions += 1
                } catch {
                    sessionFailures += 1
                    if sessionFailures > 20 { break }
                    continue
                }
                // Each round: 16 streams, each fed until it stops taking bytes.
                let round = try wait(loop.submit { () -> (offered: Int, accepted: Int, refused: Int) in
                    var o = 0, a = 0, r = 0
                    let ping = ByteBuffer(repeating: 0x50, count: 32 * 1024)
                    for _ in 0..<MuxHandler.controlSessionStreams + 4 {
                        guard let stream = session.mux.openStream(protocol: "/ipfs/ping/1.0.0", negotiated: { ok in if !ok { r += 1 } }) else { break }
                        stream.onData = { _ in }  // read, never consumed: the window never reopens
                        var n = 0
                        while stream.isWritable, n < 64 {
                            stream.write(ping)
                            o += ping.readableBytes
                            n += 1
                        }
                        a += n * ping.readableBytes
                    }
                    return (o, a, r)
                }, timeout: 10)
                offered += round.offered
                accepted += round.accepted
                // Let the node answer what it will; then keep the session open and push again.
                Thread.sleep(forTimeInterval: 0.5)
                let more = try? wait(loop.submit {
                    var more = 0
                    for _ in 0..<8 {
                        guard let s = session.mux.openStream(protocol: "/ipfs/ping/1.0.0", negotiated: { _ in }) else { break }
                        s.onData = { _ in }
                        while s.isWritable, more < 4 * 1024 * 1024 {
                            s.write(ByteBuffer(repeating: 0x51, count: 32 * 1024))
                            more += 32 * 1024
                        }
                    }
                    return more
                }, timeout: 10)
                offered += more ?? 0
                if sessions >= 64 { Thread.sleep(forTimeInterval: 0.2) }
                if sessions % 32 == 0 { session.close() }
            }
        }
        let others = servedOthers(city)
        let grew = rss.peak - rss.before
        return AttackReport(
            name: "ping hoarding on control sessions to \(city.name) (front only)",
            limit: "pings echoed only while the stream is writable and consumed once echoed; 1 KiB unanswered resets the stream; control sessions: 8 streams, 32 KiB backlog per stream, 128 control streams per node",
            rssBeforeKiB: rss.before, rssPeakKiB: rss.peak, rssAfterKiB: rss.after,
            legitimate: others.line,
            detail: "\(sessions) sessions; the attacker wrote \(offered / 1_048_576) MiB of pings into its own mux, which sends only what the node's windows allow; \(sessionFailures) sessions refused",
            passed: grew < Self.rssBudgetKiB && others.ok)
    }

    // MARK: control-frame flood

    /// One control session that stops reading its socket and floods yamux control frames (SYN+RST
    /// pairs and pings) inside DATA records for `seconds`.
    func controlFlood(seconds: Double) throws -> AttackReport {
        guard let city = demo.frontOnly else { throw AbuseError("the demo has no front-only city") }
        let loop = group.next()
        let session = try AttackSession.open(on: loop, to: city)
        let frames = NIOLockedBox(0)
        let closedAfter = NIOLockedBox<Double?>(nil)
        let start = Date()
        session.channel.closeFuture.whenComplete { _ in closedAfter.set(Date().timeIntervalSince(start)) }
        // Stop reading: the node's answers pile up on its side.
        try wait(session.channel.setOption(.autoRead, value: false), timeout: 5)
        let rss = measured(city) {
            let nextID = NIOLockedBox<UInt32>(1_000_001)
            while Date().timeIntervalSince(start) < seconds, closedAfter.get() == nil {
                let batch = loop.submit { () -> Bool in
                    guard session.channel.isWritable else { return false }
                    var buffer = ByteBuffer()
                    var id = nextID.get()
                    defer { nextID.set(id) }
                    for _ in 0..<2048 {
                        Self.yamuxHeader(&buffer, type: 1, flags: 0x1, stream: id, length: 0)  // SYN
                        Self.yamuxHeader(&buffer, type: 1, flags: 0x8, stream: id, length: 0)  // RST
                        id &+= 2
                    }
                    session.channel.writeAndFlush(buffer, promise: nil)
                    frames.update { $0 += 4096 }
                    return true
                }
                if (try? wait(batch, timeout: 5)) != true { Thread.sleep(forTimeInterval: 0.01) }
            }
        }
        let closed = closedAfter.get()
        session.close()
        // Then pings: 64 at once, beyond the burst of 32.
        let pinger = try AttackSession.open(on: loop, to: city)
        var pings = ByteBuffer()
        for i in 0..<64 { Self.yamuxHeader(&pings, type: 2, flags: 0x1, stream: 0, length: UInt32(i)) }
        pinger.channel.writeAndFlush(pings, promise: nil)
        let pingClosed = (try? wait(pinger.channel.closeFuture, timeout: 5)) != nil
        pinger.close()
        let others = servedOthers(city)
        let grew = rss.peak - rss.before
        return AttackReport(
            name: "yamux control-frame flood on a control session to \(city.name), attacker never reads",
            limit: "session stops reading its carrier above \(MuxHandler.maxUnsentBytes / 1_048_576) MiB unsent; ping burst 32 then 2/s (ping flood closes the session); refused-stream burst 1024 then 64/s",
            rssBeforeKiB: rss.before, rssPeakKiB: rss.peak, rssAfterKiB: rss.after,
            legitimate: others.line,
            detail: "\(frames.get()) control frames sent in \(String(format: "%.1f", min(seconds, Date().timeIntervalSince(start)))) s; " +
                (closed.map { "node closed the session after \(String(format: "%.1f", $0)) s" } ?? "the node paused reading (session not closed)") +
                "; 64 pings at once: " + (pingClosed ? "session closed as a ping flood" : "NOT closed"),
            passed: grew < Self.rssBudgetKiB && others.ok && pingClosed)
    }

    static func yamuxHeader(_ b: inout ByteBuffer, type: UInt8, flags: UInt16, stream: UInt32, length: UInt32) {
        b.writeInteger(UInt8(0))
        b.writeInteger(type)
        b.writeInteger(flags)
        b.writeInteger(stream)
        b.writeInteger(length)
    }
}
