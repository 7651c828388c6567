import Foundation
import MontanaCrypto
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The exit's DNS cannot stall it, and its per-account and descriptor budgets refuse with
/// status 3 while the node keeps serving.
final class ExitResourceTests: XCTestCase {
    /// `[dns] timeout_ms` given to the demo's exits: short so a hung lookup fails in about a second.
    private let dnsTimeoutMs = 1000
    /// Slack on "fails at the DNS deadline": session set-up, the client and curl on a loaded 2-core machine.
    private let deadlineSlack: TimeInterval = 4
    /// Parallel fetches of names whose lookups hang (more than `max_per_session`, 8, so some queue).
    private let hungFetches = 20
    /// A fetch of an IP literal while those hang must take less than this (a normal one takes ~50 ms).
    private let literalFetchLimit: TimeInterval = 3
    /// Descriptors left above the 256-descriptor reserve when the exits' limit is lowered: a
    /// dozen streams fit, then opens are refused.
    private let descriptorHeadroom = 12
    /// Streams tried before giving up on seeing a refusal (headroom × 2 exits + margin).
    private let maxHeldStreams = 80

    private var demo: DemoHarness?
    private var udpSocket: Int32 = -1
    private var held: [Int32] = []
    private var group: MultiThreadedEventLoopGroup?
    private var probes: [ProbeSession] = []

    override func tearDown() {
        for fd in held { close(fd) }
        held = []
        for p in probes { p.close() }
        probes = []
        demo?.stop()
        demo = nil
        if udpSocket >= 0 { close(udpSocket) }
        udpSocket = -1
        try? group?.syncShutdownGracefully()
        group = nil
        super.tearDown()
    }

    /// A bound UDP socket on 127.0.0.1 that is never read: a DNS server that swallows every query.
    private func swallowingDNSServer() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket(): errno \(errno)") }
        udpSocket = fd
        var addr = Net.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw E2EError("bind(): errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func test_hungDNSFailsAtTheDeadlineAndNeverBlocksOtherOpens() throws {
        let dnsPort = try swallowingDNSServer()
        let demo = try DemoHarness.start(.init(extraArguments: ["--dns-server", "127.0.0.1:\(dnsPort)", "--dns-timeout-ms", "\(dnsTimeoutMs)"]))
        self.demo = demo
        let timeout = Double(dnsTimeoutMs) / 1000

        let hung = try demo.curlSOCKS("http://never.example:80/", timeout: 20)
        XCTAssertEqual(hung.exitCode, Curl.proxyError, "a name whose lookup hangs is answered as unreachable: \(hung)\n\(demo.diagnostics())")
        XCTAssertLessThan(hung.elapsed, timeout + deadlineSlack, "the open fails at the DNS deadline, not the 30 s open timeout: \(hung)")
        XCTAssertGreaterThanOrEqual(hung.elapsed, timeout * 0.9, "the exit did wait for the server: \(hung)")

        let outcomes = CurlResults()
        let fetches = DispatchGroup()
        for i in 0..<hungFetches {
            DispatchQueue.global().async(group: fetches) {
                if let r = try? demo.curlSOCKS("http://hung-\(i).never.example/", timeout: 20) { outcomes.append(r) }
            }
        }
        Thread.sleep(forTimeInterval: 0.3) // let the hung opens reach the exits
        let literal = try demo.curlSOCKS("\(demo.siteURL)/", extra: ["--fail"], timeout: 10)
        XCTAssertTrue(literal.succeeded, "an IP literal needs no DNS and must not wait behind hung lookups: \(literal)\n\(demo.diagnostics())")
        XCTAssertLessThan(literal.elapsed, literalFetchLimit, "\(literal)")
        XCTAssertEqual(fetches.wait(timeout: .now() + 40), .success, "the hung fetches end")
        let all = outcomes.all
        XCTAssertEqual(all.count, hungFetches)
        for r in all {
            XCTAssertFalse(r.succeeded, "\(r)")
            XCTAssertNotEqual(r.exitCode, Curl.timedOut, "every hung name is answered, queued ones too, by the deadline: \(r)")
            XCTAssertLessThan(r.elapsed, timeout + deadlineSlack, "\(r)")
        }
        let after = try demo.curlSOCKS("\(demo.siteURL)/", extra: ["--fail"], timeout: 10)
        XCTAssertTrue(after.succeeded, "the exit serves as before: \(after)")
    }

    // MARK: per-account sessions

    /// EgressOpen TCP 127.0.0.1:`port` as the first stream (yamux id 1) of `session`; the ack's status byte.
    private func openStatus(_ session: ProbeSession, port: Int) throws -> UInt8? {
        let open = EgressOpen(streamID: 1, transport: .tcp, address: .ipv4([127, 0, 0, 1]), port: UInt16(port))
        let body = try EgressMessage.open(open).encode()
        let framed = LengthPrefixedDecoder.frame(body)
        // The ack: length 6, then 03 ‖ stream id ‖ status.
        let outcome = try session.stream(EgressMessage.protocolID, send: Array(framed.readableBytesView), expect: 7, timeout: 10)
        guard outcome.received.count >= 7, outcome.received[1] == 0x03 else { return nil }
        return outcome.received[6]
    }

    private func probe(_ demo: DemoHarness, account: IdentityKey, loop: any EventLoop) throws -> ProbeSession {
        let front = try demo.status.city("amsterdam"), exit = try demo.status.city("berlin")
        guard let exitID = NodeID(hex: exit.nodeID) else { throw E2EError("bad node id for berlin") }
        let session = try ProbeSession.open(on: loop, front: front, target: exit, identity: account) { h in
            let auth = try EgressAuthProof.build(account: account, exit: exitID, bindingHash: h, now: WallClock.now())
            return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0))),
                               TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        probes.append(session)
        guard try awaitFuture(session.established, timeout: 15, what: "session") != nil else {
            throw E2EError("the session to berlin was not established\n\(demo.diagnostics())")
        }
        return session
    }

    func test_sessionsOfOneAccountBeyondTheCapGetStatus3() throws {
        let demo = try DemoHarness.start()
        self.demo = demo
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        let account = try IdentityKey.generate()
        let sitePort = demo.status.site.port
        // `[limits] sessions_per_account` defaults to 8.
        var sessions: [ProbeSession] = []
        for _ in 0..<9 { sessions.append(try probe(demo, account: account, loop: group.next())) }
        for (i, session) in sessions.enumerated() {
            let status = try openStatus(session, port: sitePort)
            XCTAssertEqual(status, i < 8 ? 0 : 3, "session \(i + 1): \(i < 8 ? "within the cap, open" : "the 9th, rate limited (status 3)")\n\(demo.diagnostics())")
        }
        let other = try probe(demo, account: try IdentityKey.generate(), loop: group.next())
        XCTAssertEqual(try openStatus(other, port: sitePort), 0, "another account is not affected")

        // Closing one session gives its slot back (the exit sees the carrier close).
        sessions[0].close()
        var reopened: UInt8?
        let freed = try poll(timeout: 10, interval: 0.2) {
            let s = try probe(demo, account: account, loop: group.next())
            reopened = try openStatus(s, port: sitePort)
            s.close()
            return reopened == 0
        }
        XCTAssertTrue(freed, "a new session of the account is served once one closed (last status \(String(describing: reopened)))")
        let berlin = try PrometheusText.scrape(try demo.status.city("berlin"))
        XCTAssertTrue(berlin.lines("montana_policy_refusals_total").contains("sessions_per_account"),
                      "the refusal is counted: \(berlin.lines("montana_policy_refusals_total"))")
    }

    // MARK: file descriptors

    private func descriptorsOpen(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// SOCKS5 CONNECT to 127.0.0.1:`port` through the demo client; returns the socket and the reply code.
    private func socksConnect(_ socksPort: Int, to port: Int) throws -> (Int32, UInt8) {
        guard let fd = Net.connectLoopback(socksPort) else { throw E2EError("cannot connect to the SOCKS port") }
        var tv = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        func sendAll(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) == bytes.count } }
        func receive(_ count: Int) -> [UInt8] {
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: count)
            while out.count < count {
                let n = recv(fd, &buffer, count - out.count, 0)
                if n <= 0 { break }
                out += buffer[0..<n]
            }
            return out
        }
        guard sendAll([5, 1, 0]), receive(2) == [5, 0] else {
            close(fd)
            throw E2EError("SOCKS greeting failed")
        }
        guard sendAll([5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF)]) else {
            close(fd)
            throw E2EError("SOCKS request failed")
        }
        let reply = receive(10)
        guard reply.count >= 2 else {
            close(fd)
            throw E2EError("no SOCKS reply")
        }
        return (fd, reply[1])
    }

    func test_exitRefusesWithStatus3BeforeDescriptorsRunOutAndRecovers() throws {
        let demo = try DemoHarness.start()
        self.demo = demo
        let warm = try demo.curlSOCKS("\(demo.siteURL)/", extra: ["--fail"], timeout: 20)
        XCTAssertTrue(warm.succeeded, "\(warm)\n\(demo.diagnostics())")
        let exits = demo.status.exits
        for exit in exits {
            // 256 is the exit's descriptor reserve (EgressLimits.descriptorReserve).
            let limit = descriptorsOpen(exit.pid) + 256 + descriptorHeadroom
            let prlimit = try ChildProcess(name: "prlimit-\(exit.name)", executable: "/usr/bin/prlimit",
                                           arguments: ["--pid", "\(exit.pid)", "--nofile=\(limit):\(limit)"], logDirectory: demo.directory)
            XCTAssertEqual(prlimit.waitForExit(timeout: 10), 0, "prlimit \(exit.name): \(prlimit.outputTail())")
        }
        var refusal: UInt8?
        for _ in 0..<maxHeldStreams {
            let (fd, code) = try socksConnect(demo.socksPort, to: demo.status.site.port)
            if code == 0 {
                held.append(fd)
            } else {
                close(fd)
                refusal = code
                break
            }
        }
        XCTAssertFalse(held.isEmpty, "streams within the budget open")
        // SOCKS5 reply 1 (general failure) is the client's answer to EgressOpenAck status 3.
        XCTAssertEqual(refusal, 1, "with \(held.count) streams held an open is refused with status 3\n\(demo.diagnostics())")
        for exit in exits { XCTAssertTrue(ProcessKiller.isAlive(exit.pid), "\(exit.name) stays up") }
        let counted = try exits.map { try PrometheusText.scrape($0).lines("montana_policy_refusals_total") }.joined(separator: " | ")
        XCTAssertTrue(counted.contains("resource_limit"), "the refusal is counted as resource_limit: \(counted)")

        for fd in held { close(fd) }
        held = []
        var last: CurlResult?
        let recovered = try poll(timeout: 15, interval: 0.3) {
            last = try demo.curlSOCKS("\(demo.siteURL)/", extra: ["--fail"], timeout: 5)
            return last?.succeeded == true
        }
        XCTAssertTrue(recovered, "once streams close the exit serves again: \(String(describing: last))\n\(demo.diagnostics())")
    }
}

/// Curl results gathered from several threads.
private final class CurlResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [CurlResult] = []

    func append(_ r: CurlResult) {
        lock.lock()
        defer { lock.unlock() }
        results.append(r)
    }

    var all: [CurlResult] {
        lock.lock()
        defer { lock.unlock() }
        return results
    }
}
