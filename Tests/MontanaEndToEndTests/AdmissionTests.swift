import Foundation
import XCTest

/// A demo with `--allow-list`: exits admit only the demo client's account.
final class AdmissionTests: XCTestCase {
    private var demo: DemoHarness?
    private var client: ChildProcess?
    private var work: String?

    override func tearDown() {
        client?.stop()
        demo?.stop()
        client = nil
        demo = nil
        Paths.removeTemporaryDirectory(work)
        super.tearDown()
    }

    func test_accountNotOnTheAllowListIsRefused() throws {
        let montana = try Paths.montana()
        let demo = try DemoHarness.start(.init(allowList: true))
        self.demo = demo
        let work = try Paths.makeTemporaryDirectory("montana-e2e-stranger")
        self.work = work

        // A second client with its own fresh account, not on the exits' allow-list.
        let keygen = try ChildProcess(name: "keygen", executable: montana, arguments: ["keygen", "account", "--out", work],
                                      logDirectory: work)
        let keygenStatus = keygen.waitForExit(timeout: 30)
        XCTAssertEqual(keygenStatus, 0, "montana keygen account failed:\n\(keygen.outputTail())")
        let accountKey = (work as NSString).appendingPathComponent("account.key")
        let socksPort = try Net.freePort()
        var config = """
        [client]
        account_key = "\(accountKey)"
        socks = "127.0.0.1:\(socksPort)"
        http = ""
        alliance = "\(demo.status.alliance?.uuid ?? "")"

        """
        for city in demo.status.cities {
            config += """

            [[members]]   # \(city.name)
            node_id = "\(city.nodeID)"
            kem_pk = "\(city.kemPK)"
            endpoint = "\(city.transit.host):\(city.transit.port)"
            roles = [\(city.roles.map { "\"\($0)\"" }.joined(separator: ", "))]

            """
            if city.isExit { config += "country = \"\(city.country)\"\n" }
        }
        let configPath = (work as NSString).appendingPathComponent("client.toml")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let client = try ChildProcess(name: "stranger-client", executable: montana, arguments: ["client", "--config", configPath],
                                      logDirectory: work)
        self.client = client
        guard Net.waitForListener(socksPort, timeout: 30, alive: { client.isRunning }) else {
            return XCTFail("the second client did not listen on \(socksPort):\n\(client.outputTail())")
        }

        let stranger = try Curl.run(Curl.socks(socksPort, user: "country-de") + ["\(demo.siteURL)/"], timeout: 15)
        let context = "\(stranger)\n\(client.outputTail())"
        XCTAssertNotEqual(stranger.exitCode, 0, "an account not on the allow-list must be refused: \(context)")
        XCTAssertNotEqual(stranger.exitCode, Curl.timedOut, "refused, not hung: \(context)")
        XCTAssertFalse(stranger.stdoutText.contains("Montana"), "the site must not be reached: \(context)")
        XCTAssertLessThan(stranger.elapsed, 10, "the refusal must be quick: \(context)")
        // The refusal is the exit's admission (EgressAuth for an account not on the list).
        let berlin = try demo.status.exit(country: "DE")
        let metrics = try PrometheusText.scrape(berlin)
        XCTAssertGreaterThan(metrics.value("montana_handshake_failures_total") ?? 0, 0,
                             "\(berlin.name) counts the refused handshake: \(metrics.lines("montana_handshake_failures_total"))")

        let member = try demo.curlSOCKS("\(demo.siteURL)/", user: "country-de", extra: ["--fail"])
        XCTAssertTrue(member.succeeded, "the demo's own (allow-listed) client works: \(member)\n\(demo.diagnostics())")
        XCTAssertTrue(member.stdoutText.contains("Hello through the Montana Alliance"), "\(member)")
    }
}
