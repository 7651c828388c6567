import Foundation
import XCTest

/// The alliance's reachability map (PROTOCOL.md 9) on real processes and sockets: reports are
/// attributed to the /16 a front sees the carrier come from (loopback has a /16 per 127.x, so a
/// report sent from 127.71.0.1 is one vote of 127.71.0.0/16, whatever it says), one /16 never
/// moves an entry however many reports it sends, three do, the per-/16 submission bound holds,
/// and a client fetches the entries for its GeoIP vantage.
final class ReachabilityMapEndToEndTests: XCTestCase {
    private var federation: Federation?

    /// The vantage the injected reports are about, and the client's (its GeoIP CSV puts
    /// 127.0.0.0/16, its own loopback address, there).
    static let country = "IR", asn = 58224

    override func tearDown() {
        federation?.stop()
        federation = nil
        super.tearDown()
    }

    private func start(_ name: String, hosts: (String, String)) throws -> Federation {
        let f = try Federation(name: name, specs: [
            .init(name: "alpha", host: hosts.0, country: "DE", operatorLabel: "Northwind Hosting"),
            .init(name: "beta", host: hosts.1, country: "NL", operatorLabel: "Bluefin Networks"),
        ])
        federation = f
        return f
    }

    private func json(_ admin: String, _ path: String) throws -> [String: Any] {
        let result = try Curl.get("http://\(admin)\(path)")
        guard result.succeeded, let doc = try JSONSerialization.jsonObject(with: Data(result.stdoutText.utf8)) as? [String: Any] else {
            throw E2EError("GET \(path) at \(admin): \(result)")
        }
        return doc
    }

    /// The node's entry for `target` in the test vantage, nil when it has none.
    private func entry(at node: FederationNode, target: String) throws -> [String: Any]? {
        let vantages = try json(node.adminAddress, "/reachability")["vantages"] as? [[String: Any]] ?? []
        let v = vantages.first { $0["country"] as? String == Self.country && $0["asn"] as? Int == Self.asn }
        return (v?["entries"] as? [[String: Any]])?.first { $0["node"] as? String == target }
    }

    /// `montana reachability report` from `source` (a loopback address: its /16 is the vote).
    @discardableResult
    private func report(_ f: Federation, to front: FederationNode, target: String, source: String, count: Int,
                        reachable: Bool = false) throws -> (sent: Int, taken: Int) {
        var arguments = ["reachability", "report", "--link", front.link, "--target", target, "--count", "\(count)",
                         "--country", Self.country, "--asn", "\(Self.asn)", "--source", source]
        if !reachable { arguments.append("--unreachable") }
        let out = try FederationCLI.check(arguments, logDirectory: f.root)
        // "sent N report(s) to <node>: M taken"
        guard let taken = out.split(separator: ":").last.flatMap({ Int($0.split(separator: " ").first ?? "") }) else {
            throw E2EError("cannot read the report count in: \(out)")
        }
        return (count, taken)
    }

    func test_reportsCountOncePerCarrierSlash16AndReachTheClient() throws {
        let f = try start("reachability map test", hosts: ("127.61.0.1", "127.62.0.1"))
        let (alpha, beta) = (f.nodes[0], f.nodes[1])

        // 600 reports from one /16 (two addresses of it): at most 256 per window are taken, and
        // they are one vote: the entry is not actionable.
        let flood = try report(f, to: alpha, target: beta.nodeID, source: "127.71.0.1", count: 600)
        XCTAssertLessThanOrEqual(flood.taken, 2 * 256, "at most 256 per /16 per 60 s window (the run may straddle two)")
        XCTAssertLessThan(flood.taken, flood.sent, "the per-/16 submission bound was pushed past")
        try report(f, to: alpha, target: beta.nodeID, source: "127.71.9.9", count: 5)
        var e = try XCTUnwrap(try entry(at: alpha, target: beta.nodeID), "alpha recorded the claim")
        XCTAssertEqual(e["sources"] as? Int, 1, "two addresses of 127.71.0.0/16 are one source group: \(e)")
        XCTAssertEqual(e["state"] as? String, "unknown", "one /16 cannot move the map: \(e)")
        XCTAssertEqual(e["actionable"] as? Bool, false)

        // The same claim from two more /16s: a quorum of 3.
        try report(f, to: alpha, target: beta.nodeID, source: "127.72.0.1", count: 1)
        e = try XCTUnwrap(try entry(at: alpha, target: beta.nodeID))
        XCTAssertEqual(e["sources"] as? Int, 2)
        XCTAssertEqual(e["actionable"] as? Bool, false, "two /16s are not a quorum: \(e)")
        try report(f, to: alpha, target: beta.nodeID, source: "127.73.0.1", count: 1)
        e = try XCTUnwrap(try entry(at: alpha, target: beta.nodeID))
        XCTAssertEqual(e["sources"] as? Int, 3)
        XCTAssertEqual(e["state"] as? String, "unreachable", "three distinct /16s make it actionable: \(e)")
        XCTAssertEqual(e["actionable"] as? Bool, true)

        // The flooding /16 used up its submissions for this window: it cannot even change its own
        // vote until the next one (its one vote stays what it was).
        let late = try report(f, to: alpha, target: beta.nodeID, source: "127.71.0.1", count: 1, reachable: true)
        e = try XCTUnwrap(try entry(at: alpha, target: beta.nodeID))
        XCTAssertEqual(e["sources"] as? Int, 3, "\(e)")
        if late.taken == 0 { XCTAssertEqual(e["reachable_sources"] as? Int, 0, "\(e)") }
        XCTAssertEqual(e["state"] as? String, "unreachable", "\(e)")

        // (Gossip to the other member rides the 60 s directory rounds: checked in the demo and by
        // ReachabilityMapTests.test_membersSyncCarriesEachVoteWithItsGroup, not here, where two
        // rounds under a loaded CI machine made the test flaky.)

        // A client whose GeoIP vantage is that one fetches the entry from its front (alpha, its
        // bootstrap) and shows it; its own vote (from 127.0.0.0/16) is about the fronts it tried.
        let geoip = (f.root as NSString).appendingPathComponent("client-geoip.csv")
        try "127.0.0.0/16,\(Self.country),\(Self.asn)\n".write(toFile: geoip, atomically: true, encoding: .utf8)
        let client = try f.makeClient("client", clientKeys: [("geoip", TOMLEdit.string(geoip))])
        try client.start(subscription: f.subscriptionPath)
        var status: [String: Any] = [:]
        var mapped: [String: Any]?
        let shown = try poll(timeout: 30, interval: 0.25) {
            status = try json(client.adminAddress, "/status")
            let reachability = status["reachability"] as? [String: Any]
            mapped = (reachability?["map"] as? [[String: Any]])?.first { beta.nodeID.hasPrefix($0["node"] as? String ?? "-") }
            return mapped?["state"] as? String == "unreachable"
        }
        let vantage = (status["reachability"] as? [String: Any])?["vantage"] as? [String: Any]
        XCTAssertEqual(vantage?["country"] as? String, Self.country, "the vantage from the client's GeoIP CSV: \(String(describing: vantage))")
        XCTAssertEqual(vantage?["asn"] as? Int, Self.asn, "the CSV's ASN column: \(String(describing: vantage))")
        XCTAssertTrue(shown, "the client shows the actionable entry for its vantage: \(String(describing: status["reachability"]))\n\(client.diagnostics())")
        XCTAssertGreaterThanOrEqual(mapped?["sources"] as? Int ?? 0, 3)
    }
}
