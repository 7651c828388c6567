import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaTransport
import NIOCore
import NIOPosix
import XCTest

/// The federation end to end, as operators and a user set it up with the CLI: an alliance of
/// six members of three operators on their own loopback /16s, each bootstrapped from one other
/// (a ring), a GeoIP CSV for the /16s, and a client whose subscription lists one bootstrap
/// front. Joining, leaving, forged records and uncorroborated countries, seen where a user sees
/// them: the client's `/directory`, curl through its proxy, the web site's request log, and
/// every member's `/directory` and `/metrics`.
final class FederationTests: XCTestCase {
    static let shared = SharedFederation()
    static let operators = ["Northwind Hosting", "Bluefin Networks", "Riverside VPN"]

    /// Five honest members (four exits in four countries, one front only) and one liar: an exit
    /// that claims JP on a /16 the GeoIP table puts in SE.
    static let members: [FederationNode.Spec] = [
        .init(name: "berlin", host: "127.21.0.1", country: "DE", operatorLabel: operators[0]),
        .init(name: "amsterdam", host: "127.22.0.1", country: "NL", operatorLabel: operators[1]),
        .init(name: "paris", host: "127.23.0.1", country: "FR", operatorLabel: operators[2]),
        .init(name: "warsaw", host: "127.24.0.1", country: "PL", operatorLabel: operators[0], roles: ["front"]),
        .init(name: "rome", host: "127.25.0.1", country: "IT", operatorLabel: operators[1]),
        .init(name: "tokyo", host: "127.27.0.1", country: "JP", geoCountry: "SE", operatorLabel: operators[2]),
    ]
    static let liarName = "tokyo"
    static var honestNames: [String] { members.map(\.name).filter { $0 != liarName } }
    /// The member test 1 adds: a new country, bootstrapped from one link.
    static let joiner = FederationNode.Spec(name: "stockholm", host: "127.26.0.1", country: "SE", operatorLabel: operators[2])

    /// Start-up: six processes on 2 cores, then gossip and two attestations per exit.
    static let convergenceTimeout: TimeInterval = 90
    /// The bound on a join reaching the client corroborated (the target is 10 s).
    static let joinBound: TimeInterval = 20
    /// The bound on a withdrawal reaching every member's and the client's directory: the
    /// deregistration pushes it to every member the node knew, and the client's long poll is
    /// answered as soon as its front's store changes.
    static let leaveBound: TimeInterval = 15

    override class func setUp() {
        super.setUp()
        shared.start {
            let federation = try Federation(name: "Montana federation test", specs: members, reserved: [joiner])
            do {
                let client = try federation.makeClient("client")
                try client.start(subscription: federation.subscriptionPath)
                let honest = federation.nodes.filter { $0.spec.name != liarName }
                let liar = try federation.node(liarName)
                let took = try federation.wait(for: client, timeout: convergenceTimeout,
                                               "every member at the client, honest exits corroborated, the liar contradicted") { doc in
                    honest.allSatisfy { node in
                        guard let m = doc.member(node.nodeID) else { return false }
                        return !node.spec.isExit || m.corroborated
                    } && (doc.member(liar.nodeID)?.contradicting ?? 0) >= 2
                }
                print(String(format: "federation: %d members converged at the client %.1f s after it started", federation.nodes.count, took))
                return (federation, client)
            } catch {
                federation.stop()
                throw error
            }
        }
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    override func tearDown() {
        Self.shared.cleanUpAfterTest()
        super.tearDown()
    }

    // MARK: 1. join and leave

    func testJoinReachesClientAndDeregisterRemovesIt() throws {
        let (federation, client) = try Self.shared.runningWithClient()
        let base = federation.nodes.filter { $0.spec.name != Self.liarName }
        XCTAssertEqual(base.count, 5)
        XCTAssertEqual(Set(base.map(\.spec.operatorLabel)).count, 3)
        XCTAssertGreaterThanOrEqual(Set(base.filter(\.spec.isExit).map(\.spec.country)).count, 3)
        try federation.wait(for: client, timeout: 30, "the client lists the five members") { doc in
            base.allSatisfy { doc.contains($0.nodeID) }
        }

        // A sixth exit in a new country, endorsed and bootstrapped from one link (paris).
        let sixth = try federation.prepareNode(Self.joiner, bootstrap: [try federation.node("paris").link])
        let began = Date()
        try sixth.start()
        let listening = Date().timeIntervalSince(began)
        try federation.wait(for: client, timeout: Self.joinBound, "the sixth member corroborated at the client") { doc in
            doc.member(sixth.nodeID)?.corroborated == true
        }
        let joined = Date().timeIntervalSince(began)
        XCTAssertLessThan(joined, Self.joinBound)

        // The proxy's exit list follows the directory once the client has applied the whole
        // answer that corroborated the member (a batch of signature checks): retried for ≤ 5 s.
        let tag = "join-\(UUID().uuidString)"
        var fetched = try client.curlSOCKS(federation.url(tag: tag), user: "country-se")
        poll(timeout: 5, interval: 0.1) {
            if !fetched.succeeded, let again = try? client.curlSOCKS(federation.url(tag: tag), user: "country-se") { fetched = again }
            return fetched.succeeded
        }
        let usable = Date().timeIntervalSince(began)
        print(String(format: "join: stockholm (SE) corroborated in the client's /directory %.2f s after `montana node` started (listening after %.2f s), usable through the proxy after %.2f s (bound %.0f s, target 10 s)",
                     joined, listening, usable, Self.joinBound))
        XCTAssertTrue(fetched.succeeded, "\(fetched)\n\(federation.diagnostics())")
        XCTAssertLessThan(usable, Self.joinBound)
        XCTAssertEqual(fetched.stdoutText, Federation.helloText)
        XCTAssertEqual(federation.fileServer.waitForSource(tagged: tag), Self.joiner.host,
                       "the web site must see the sixth exit's egress_source")

        // Leave while running: every member and the client drop it.
        let deregister = try FederationCLI.run(["node", "deregister", "--config", sixth.configPath], logDirectory: federation.root)
        XCTAssertEqual(deregister.status, 0, "\(deregister)")
        let left = Date()
        for node in federation.nodes where node.isRunning {
            try federation.wait(timeout: Self.leaveBound, "\(node.spec.name) drops the withdrawn member",
                                fetch: { try node.directoryView() }) { !$0.contains(sixth.nodeID) }
        }
        try federation.wait(timeout: Self.leaveBound, "the sixth drops itself", fetch: { try sixth.directoryView() }) { !$0.contains(sixth.nodeID) }
        try federation.wait(for: client, timeout: Self.leaveBound, "the client drops the withdrawn member") { !$0.contains(sixth.nodeID) }
        let gone = Date().timeIntervalSince(left)
        print(String(format: "leave: stockholm gone from all %d members' and the client's /directory %.2f s after `montana node deregister` (bound %.0f s)",
                     federation.nodes.count, gone, Self.leaveBound))
        XCTAssertLessThan(gone, Self.leaveBound)

        let socks = try client.curlSOCKS(federation.url(tag: "after-\(tag)"), user: "country-se", timeout: 15)
        XCTAssertEqual(socks.exitCode, Curl.proxyError, "country-se must fail with the proxy's error: \(socks)")
        let http = try client.curlHTTP(federation.url(tag: "after-http-\(tag)"), user: "country-se", extra: ["-i"], timeout: 15)
        let answer = HTTPAnswer(http)
        XCTAssertEqual(answer.status, 502, "\(http)")
        XCTAssertTrue(answer.body.contains("no exit matches country SE"), "\(answer)")
        XCTAssertTrue(federation.fileServer.sources(tagged: "after-").isEmpty, "no request may reach the site through a withdrawn exit")
    }

    // MARK: 2. forged records

    func testForgedRecordsAreRejectedAtEveryNodeAndCounted() throws {
        let (federation, client) = try Self.shared.runningWithClient()
        let forger = try RecordForger(alliancePath: federation.alliance.documentPath, secretPath: federation.alliance.secretPath)
        let forged = try forger.all()
        let uuid = forger.alliance.uuidBytes
        let targets = federation.nodes.filter(\.isRunning)
        XCTAssertEqual(targets.count, Self.members.count)
        let before = try targets.map { try $0.metrics() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }

        // An insider: a real member's identity (berlin's key) sends every forgery as `record`
        // frames to every member, itself included.
        let insider = try federation.node("berlin").identity
        for node in targets {
            try FederationExchange.deliver(records: forged.map(\.signed), to: node.target, as: insider, alliance: uuid, on: group.next())
        }
        // An outsider: the unendorsed node pushes its own record as `self_record`; it is no member.
        let outsider = try XCTUnwrap(forged.first { $0.reason == "no_endorsement" })
        for node in targets {
            let pushed = DirectoryPush.push(outsider.signed, to: try node.target, identity: outsider.identity, alliance: uuid, on: group.next())
            _ = try? awaitFuture(pushed, timeout: 20, what: "the outsider's push to \(node.spec.name)")
        }

        var expected: [String: Double] = [:]
        for f in forged { expected[f.reason, default: 0] += 1 }
        // The outsider's own record is counted too (its reason), and its exchange as not_member.
        expected[outsider.reason, default: 0] += 1
        let rejected = "montana_directory_rejected_total"
        for (node, old) in zip(targets, before) {
            var now = old
            let grew = poll(timeout: 10, interval: 0.2) {
                guard let scraped = try? node.metrics() else { return false }
                now = scraped
                return expected.allSatisfy { reason, n in scraped.value(rejected, label: "reason", reason) >= old.value(rejected, label: "reason", reason) + n }
                    && scraped.value("montana_gossip_exchanges_total", label: "outcome", "not_member")
                    >= old.value("montana_gossip_exchanges_total", label: "outcome", "not_member") + 1
            }
            for (reason, n) in expected.sorted(by: { $0.key < $1.key }) {
                let delta = now.value(rejected, label: "reason", reason) - old.value(rejected, label: "reason", reason)
                XCTAssertGreaterThanOrEqual(delta, n, "\(node.spec.name): \(rejected){reason=\"\(reason)\"} grew by \(delta), expected \(n)")
            }
            XCTAssertTrue(grew, "\(node.spec.name): \(now.lines(rejected)); \(now.lines("montana_gossip_exchanges_total"))")
        }

        let forgedIDs = Set(forged.map(\.nodeID))
        for node in targets {
            let doc = try node.directoryView()
            let leaked = doc.members.map(\.nodeID).filter(forgedIDs.contains)
            XCTAssertTrue(leaked.isEmpty, "\(node.spec.name) lists forged members \(leaked)")
        }
        let clientDoc = try client.directoryView()
        XCTAssertTrue(clientDoc.members.map(\.nodeID).filter(forgedIDs.contains).isEmpty, "the client lists forged members:\n\(clientDoc)")

        // Still serving.
        let tag = "forged-\(UUID().uuidString)"
        let fetched = try client.curlSOCKS(federation.url(tag: tag))
        XCTAssertTrue(fetched.succeeded, "\(fetched)\n\(federation.diagnostics())")
        XCTAssertEqual(fetched.stdoutText, Federation.helloText)
        XCTAssertTrue(targets.allSatisfy(\.isRunning), federation.diagnostics())
    }

    // MARK: 3. advisory exits

    func testUncorroboratedCountryIsAdvisoryAndNotChosenByAuto() throws {
        let (federation, client) = try Self.shared.runningWithClient()
        let liar = try federation.node(Self.liarName)
        try federation.wait(for: client, timeout: 30, "the liar listed as advisory, located elsewhere by 2 members") { doc in
            guard let m = doc.member(liar.nodeID) else { return false }
            return m.corroboration == "advisory" && m.country == "JP" && m.contradicting >= 2
        }

        // Automatic connections never leave through it.
        let run = "auto-\(UUID().uuidString)"
        var seen: [String: Int] = [:]
        for i in 0..<20 {
            let tag = "\(run)-\(i)"
            let result = try client.curlSOCKS(federation.url(tag: tag))
            XCTAssertTrue(result.succeeded, "\(result)")
            let source = federation.fileServer.waitForSource(tagged: tag)
            XCTAssertNotNil(source, "request \(i) was not logged by the site")
            seen[source ?? "none", default: 0] += 1
        }
        print("advisory: 20 automatic connections left from \(seen.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))")
        XCTAssertNil(seen[liar.spec.host], "an automatic connection left through the advisory exit")
        let honestExits = Set(federation.nodes.filter { $0.spec.isExit && $0.spec.name != Self.liarName }.map(\.spec.host))
        XCTAssertTrue(Set(seen.keys).isSubset(of: honestExits), "sources \(seen.keys) are not the honest exits' egress addresses")

        // Asking for its country names the reason.
        let http = try client.curlHTTP(federation.url(tag: "jp-\(run)"), user: "country-jp", extra: ["-i"], timeout: 15)
        let answer = HTTPAnswer(http)
        XCTAssertEqual(answer.status, 502, "\(http)")
        XCTAssertTrue(answer.body.contains("advisory"), "\(answer)")
        let socks = try client.curlSOCKS(federation.url(tag: "jp-socks-\(run)"), user: "country-jp", timeout: 15)
        XCTAssertEqual(socks.exitCode, Curl.proxyError, "\(socks)")
        XCTAssertTrue(federation.fileServer.sources(tagged: "jp-").isEmpty)

        // A user who allows advisory exits gets it.
        let lenient = try federation.makeClient("advisory-client")
        try lenient.start(subscription: federation.subscriptionPath, arguments: ["--advisory-exits"])
        try federation.wait(for: lenient, timeout: 30, "the --advisory-exits client lists every member") { doc in
            federation.nodes.allSatisfy { doc.contains($0.nodeID) }
        }
        // The proxy takes the members once the client has applied the whole first answer (every
        // record and attestation verified), a little after /directory shows them: ≤ 5 s.
        let tag = "lenient-\(run)"
        var allowed = try lenient.curlSOCKS(federation.url(tag: tag), user: "country-jp")
        poll(timeout: 5, interval: 0.1) {
            if !allowed.succeeded, let again = try? lenient.curlSOCKS(federation.url(tag: tag), user: "country-jp") { allowed = again }
            return allowed.succeeded
        }
        XCTAssertTrue(allowed.succeeded, "\(allowed)\n\(lenient.diagnostics())")
        XCTAssertEqual(allowed.stdoutText, Federation.helloText)
        XCTAssertEqual(federation.fileServer.waitForSource(tagged: tag), liar.spec.host)
    }
}
