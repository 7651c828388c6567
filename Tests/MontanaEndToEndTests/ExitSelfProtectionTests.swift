import Foundation
import XCTest

/// The default demo: exits re-open loopback with `allow_private` so the local site works, yet an
/// EgressOpen through SOCKS to the exit's own admin port or to a member's transit port is
/// refused (the exit's self-protection), and the refusal is counted with reason "self".
final class ExitSelfProtectionTests: XCTestCase {
    private var demo: DemoHarness?
    /// curl's whole budget per request: a refusal comes back in milliseconds, a fetch of the
    /// demo site in well under a second; 20 s only matters when something hangs.
    private let requestTimeout: TimeInterval = 20
    /// A refusal must be an answer, not a timeout: 10 s is far above an answer, far below curl's budget.
    private let refusalBound: TimeInterval = 10

    override func tearDown() {
        demo?.stop()
        demo = nil
        super.tearDown()
    }

    func test_exitRefusesItsOwnAdminPortAndMemberTransitPortsButStillReachesTheDemoSite() throws {
        let demo = try DemoHarness.start()
        self.demo = demo
        let status = demo.status
        for exit in status.exits {
            let user = "country-\(exit.country.lowercased())"
            // The site on 127.0.0.1 works through this exit (loopback re-opened by allow_private).
            let site = try demo.curlSOCKS(demo.siteURL + "/", user: user, timeout: requestTimeout)
            XCTAssertTrue(site.succeeded, "the demo site through \(exit.name): \(site)\n\(demo.diagnostics())")

            var targets = ["http://127.0.0.1:\(exit.admin.port)/status", "http://localhost:\(exit.admin.port)/metrics",
                           "http://[::ffff:127.0.0.1]:\(exit.admin.port)/status", "http://\(exit.transit.host):\(exit.transit.port)/"]
            for member in status.cities where member.name != exit.name {
                targets.append("http://\(member.transit.host):\(member.transit.port)/")
            }
            for url in targets {
                let result = try demo.curlSOCKS(url, user: user, timeout: requestTimeout)
                XCTAssertEqual(result.exitCode, Curl.proxyError,
                               "\(exit.name) must refuse \(url) with a SOCKS error (97), not connect or time out: \(result)")
                XCTAssertFalse(result.stdoutText.contains("node_id") || result.stdoutText.contains("montana_"),
                               "the admin API must not answer through the exit: \(result)")
                XCTAssertLessThan(result.elapsed, refusalBound, "the refusal must be quick: \(result)")
            }
            let metrics = try PrometheusText.scrape(exit)
            let selfRefusals = metrics.samples.filter { $0.name == "montana_policy_refusals_total" && $0.labels.contains("\"self\"") }
            XCTAssertGreaterThanOrEqual(selfRefusals.reduce(0) { $0 + $1.value }, Double(targets.count),
                                        "\(exit.name) counts each refusal as reason self: \(metrics.lines("montana_policy_refusals_total"))")
            // The admin API itself still answers on its own port (not through the exit).
            XCTAssertTrue(try Curl.get("http://127.0.0.1:\(exit.admin.port)/status").succeeded)
        }
    }
}
