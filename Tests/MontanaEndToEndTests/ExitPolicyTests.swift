import Foundation
import XCTest

/// A demo with `--strict-exit-policy`: exits keep the default policy, which refuses loopback.
final class ExitPolicyTests: XCTestCase {
    private var demo: DemoHarness?

    override func tearDown() {
        demo?.stop()
        demo = nil
        super.tearDown()
    }

    func test_exitPolicyRefusesLoopbackAndNamesThatResolveToIt() throws {
        let demo = try DemoHarness.start(.init(strictExitPolicy: true))
        self.demo = demo
        let port = demo.status.site.port
        for url in ["http://127.0.0.1:\(port)/", "http://localhost:\(port)/"] {
            let result = try demo.curlSOCKS(url, timeout: 20)
            XCTAssertEqual(result.exitCode, Curl.proxyError,
                           "\(url) must be refused with a SOCKS error (97), not a timeout (28) or success: \(result)")
            XCTAssertFalse(result.stdoutText.contains("Montana"), "the site must not be reached: \(result)")
            XCTAssertLessThan(result.elapsed, 10, "the refusal must be quick: \(result)")
        }
        // The same policy holds for UDP: a datagram to loopback never reaches the echo server.
        let script = try XCTUnwrap(Bundle.module.path(forResource: "udp_probe", ofType: "py", inDirectory: "Resources"))
        let probe = try ChildProcess(name: "udp-refused", executable: "/usr/bin/python3",
                                     arguments: [script, "\(demo.socksPort)", "", "expect-refused"], logDirectory: NSTemporaryDirectory())
        let status = probe.waitForExit(timeout: 20)
        if status == nil { probe.stop() }
        XCTAssertEqual(status, 0, "UDP to loopback must be refused: \(probe.outputTail())")
        let refusals = try demo.status.exits.map { exit in (exit, try PrometheusText.scrape(exit)) }
        let total = refusals.reduce(0) { $0 + ($1.1.value("montana_policy_refusals_total") ?? 0) }
        XCTAssertGreaterThan(total, 0, "the exit counts the refusals: "
                             + refusals.map { "\($0.0.name): \($0.1.lines("montana_policy_refusals_total"))" }.joined(separator: " | "))
    }
}
