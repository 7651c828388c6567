import Foundation
import MontanaCrypto
import MontanaWire
import NIOCore
import NIOPosix
import XCTest

/// `[limits] egress_open_timeout_seconds` and `egress_idle_timeout_seconds` (PROTOCOL.md 7.4
/// EGRESS_OPEN_TIMEOUT and EGRESS_SESSION_IDLE_TIMEOUT) against a real exit with short values: an
/// open whose lookup never answers fails at the open timeout, and a stream with no traffic is
/// closed by the exit at the idle timeout while one with traffic stays.
final class EgressTimeoutTests: XCTestCase {
    /// `egress_open_timeout_seconds` for the test's exit (default 30).
    private let openTimeout: TimeInterval = 1
    /// `egress_idle_timeout_seconds` for the test's exit (default 240).
    private let idleTimeout: TimeInterval = 2
    /// `[dns] timeout_ms`: ten times the open timeout, so it is the open timeout that ends an open
    /// whose lookup hangs (without it the open would fail only after 10 s).
    private let dnsTimeoutMs = 10_000
    /// Scheduling slack above a timeout on a loaded 2-core machine (the open must fail in 1-3 s).
    private let slack: TimeInterval = 2
    /// Bound on acks of opens that succeed (a loopback connect).
    private let ackTimeout: TimeInterval = 15
    /// The kept-alive stream sends an EgressKeepalive this often: a quarter of the idle timeout.
    private let keepaliveInterval: TimeInterval = 0.5

    private var rig: EgressRig?
    private var dns: SwallowingDNSServer?

    override func tearDown() {
        rig?.stop()
        rig = nil
        dns?.close()
        dns = nil
        super.tearDown()
    }

    /// Starts the exit with the short timeouts (and its resolver pointed at `dnsPort`), a holding
    /// destination and a session with a fresh account.
    private func setUpExit(dnsPort: Int? = nil) throws -> (LoneExitNode, HoldingListener, EgressProbe) {
        var extra = """
        [limits]
        egress_open_timeout_seconds = \(Int(openTimeout))
        egress_idle_timeout_seconds = \(Int(idleTimeout))

        """
        if let dnsPort {
            extra += """

            [dns]
            servers = ["127.0.0.1:\(dnsPort)"]
            timeout_ms = \(dnsTimeoutMs)

            """
        }
        let rig = try EgressRig.start(name: "egress-timeouts", extraConfig: extra)
        self.rig = rig
        return (rig.node, rig.listener, rig.probe)
    }

    func test_openWhoseLookupNeverAnswersFailsAtTheOpenTimeout() throws {
        let dns = try SwallowingDNSServer()
        self.dns = dns
        let (node, listener, probe) = try setUpExit(dnsPort: dns.port)

        let hung = probe.openEgress(.host("open-timeout.never-answers.example"), port: 80)
        let ack = try awaitFuture(hung.ack, timeout: Double(dnsTimeoutMs) / 1000 + 10, what: "the EgressOpenAck of the hung open")
        XCTAssertEqual(ack.status, .unreachable, "an open that cannot complete is answered unreachable (status 2)")
        XCTAssertGreaterThanOrEqual(ack.elapsed, openTimeout * 0.9, "the exit waited for the lookup: \(ack.elapsed) s")
        XCTAssertLessThan(ack.elapsed, openTimeout + slack,
                          "the open fails at the \(openTimeout) s open timeout, not the \(dnsTimeoutMs) ms DNS deadline: "
                          + "\(ack.elapsed) s\n\(node.diagnostics())")

        // The session is unharmed: an IP literal opens at once.
        let literal = probe.openEgress(.ipv4([127, 0, 0, 1]), port: listener.port)
        XCTAssertEqual(try awaitFuture(literal.ack, timeout: ackTimeout, what: "the literal open").status, .open)
    }

    func test_egressStreamWithoutTrafficIsClosedAtTheIdleTimeout() throws {
        let (node, listener, probe) = try setUpExit()
        let destination = EgressAddress.ipv4([127, 0, 0, 1])
        let silent = probe.openEgress(destination, port: listener.port)
        let kept = probe.openEgress(destination, port: listener.port)
        let silentAck = try awaitFuture(silent.ack, timeout: ackTimeout, what: "the silent stream's ack")
        XCTAssertEqual(silentAck.status, .open)
        XCTAssertEqual(try awaitFuture(kept.ack, timeout: ackTimeout, what: "the kept stream's ack").status, .open)
        XCTAssertTrue(poll(timeout: 5) { listener.accepted == 2 }, "both streams reached the destination")

        // Watch for twice the idle timeout while the kept stream sends keepalives.
        let watchUntil = silentAck.at.addingTimeInterval(2 * idleTimeout)
        while Date() < watchUntil {
            kept.sendKeepalive()
            Thread.sleep(forTimeInterval: keepaliveInterval)
        }
        let (how, endedAt) = try awaitFuture(silent.end, timeout: slack + 5, what: "the silent stream's end")
        let idle = endedAt.timeIntervalSince(silentAck.at)
        XCTAssertEqual(how, .reset, "the exit resets an idle stream")
        XCTAssertGreaterThanOrEqual(idle, idleTimeout * 0.9, "not before the idle timeout: \(idle) s")
        XCTAssertLessThan(idle, idleTimeout + slack, "at the \(idleTimeout) s idle timeout, not the 240 s default: \(idle) s\n\(node.diagnostics())")
        XCTAssertTrue(poll(timeout: 5) { listener.closed >= 1 }, "the exit closed the idle stream's destination connection")

        XCTAssertFalse(try kept.hasEnded(), "a stream with traffic outlives the idle timeout")
        XCTAssertEqual(listener.open, 1, "the kept stream's destination connection is still open")
    }
}
