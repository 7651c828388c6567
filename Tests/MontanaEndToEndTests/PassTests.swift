import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire
import XCTest

/// Account passes end to end: an exit with `[exit] admission = "pass"` (issuers taken from
/// node.alliance), two fronts of other operators that corroborate it, and one client per test
/// with its own account and pass — issued with `montana pass issue`, or crafted with
/// `PassFile.issue` where the CLI cannot (a pass that expired, a 100,000-byte quota, another
/// alliance's issuer). What the user sees: curl through the proxy, the HTTP proxy's 502 text,
/// `montana status`.
final class PassTests: XCTestCase {
    static let shared = SharedFederation()

    static let members: [FederationNode.Spec] = [
        .init(name: "frankfurt", host: "127.31.0.1", country: "DE", operatorLabel: "Northwind Hosting", admission: "pass"),
        .init(name: "oslo", host: "127.32.0.1", country: "NO", operatorLabel: "Bluefin Networks", roles: ["front"]),
        .init(name: "lyon", host: "127.33.0.1", country: "FR", operatorLabel: "Riverside VPN", roles: ["front"]),
    ]
    static let exitName = "frankfurt"
    /// The quota the quota test's pass carries, and the file it downloads (over the quota).
    static let quotaBytes: UInt64 = 100_000
    static let bigFile = "big.bin"
    static let bigFileBytes = 150_000

    override class func setUp() {
        super.setUp()
        shared.start {
            let federation = try Federation(name: "Montana pass test", specs: members, files: [bigFile: bigFileBytes])
            do {
                let exit = try federation.node(exitName)
                let front = try federation.node("oslo")
                let took = try federation.wait(timeout: 60, "the pass exit corroborated at the fronts",
                                               fetch: { try front.directoryView() }) { doc in
                    doc.member(exit.nodeID)?.corroborated == true && members.count == doc.members.count
                }
                print(String(format: "pass federation: exit corroborated %.1f s after the members listened", took))
                return (federation, nil)
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

    // MARK: helpers

    /// A client with `pass = "pass.json"` in client.toml, the file written by `make` for the
    /// client's account; started on the federation's subscription (one bootstrap link).
    private func clientWithPass(_ name: String, _ federation: Federation,
                                make: (_ account: [UInt8]) throws -> PassFile) throws -> FederationClient {
        let client = try federation.makeClient(name, clientKeys: [("pass", TOMLEdit.string("pass.json"))])
        let account = try XCTUnwrap(Hex.decode(client.accountID))
        try make(account).write(to: (client.directory as NSString).appendingPathComponent("pass.json"))
        try client.start(subscription: federation.subscriptionPath)
        try waitForExit(client, federation)
        return client
    }

    /// Until the client lists the exit corroborated and knows a front besides it.
    private func waitForExit(_ client: FederationClient, _ federation: Federation) throws {
        let exit = try federation.node(Self.exitName)
        try federation.wait(for: client, timeout: 30, "\(client.name) sees the pass exit corroborated") { doc in
            doc.member(exit.nodeID)?.corroborated == true && doc.members.count == Self.members.count
        }
    }

    private func secret(_ federation: Federation) throws -> AllianceSecret {
        try AllianceSecret.load(path: federation.alliance.secretPath)
    }

    /// A request through the HTTP proxy to the exit's country, retried for ≤ 5 s while the
    /// client has not yet taken the members its /directory shows (it applies a whole answer
    /// first) — the answer `until` accepts, or the last one.
    private func fetch(_ client: FederationClient, _ url: String, until accepted: (HTTPAnswer) -> Bool) throws -> (HTTPAnswer, CurlResult) {
        var result = try client.curlHTTP(url, user: "country-de", extra: ["-i"])
        var answer = HTTPAnswer(result)
        poll(timeout: 5, interval: 0.1) {
            if !accepted(answer), let again = try? client.curlHTTP(url, user: "country-de", extra: ["-i"]) {
                result = again
                answer = HTTPAnswer(again)
            }
            return accepted(answer)
        }
        return (answer, result)
    }

    // MARK: tests

    func testValidPassFromTheCLIAdmitsAndNoPassIsRefused() throws {
        let federation = try Self.shared.running()
        let exit = try federation.node(Self.exitName)
        // The operator issues a pass for the user's account and hands it out in a subscription.
        let client = try federation.makeClient("valid")
        let passPath = (client.directory as NSString).appendingPathComponent("issued-pass.json")
        try FederationCLI.check(["pass", "issue", "--secret", federation.alliance.secretPath, "--account", client.accountID,
                                 "--days", "30", "--out", passPath], logDirectory: federation.root)
        let subscription = (client.directory as NSString).appendingPathComponent("subscription.json")
        try FederationCLI.check(["subscription", "create", "--alliance", federation.alliance.documentPath,
                                 "--bootstrap", try federation.node("oslo").link, "--pass", passPath, "--out", subscription],
                                logDirectory: federation.root)
        try client.start(subscription: subscription)
        try waitForExit(client, federation)
        let tag = "valid-\(UUID().uuidString)"
        let (answer, result) = try fetch(client, federation.url(tag: tag)) { $0.status == 200 }
        XCTAssertEqual(answer.status, 200, "\(result)\n\(client.diagnostics())\n\(exit.diagnostics())")
        XCTAssertEqual(answer.body, Federation.helloText)
        XCTAssertEqual(federation.fileServer.waitForSource(tagged: tag), exit.spec.host)
        let status = try FederationCLI.run(["status", "--admin", client.adminAddress], logDirectory: federation.root)
        XCTAssertEqual(status.status, 0, "\(status)")
        XCTAssertTrue(status.stdout.contains("pass: valid until"), "\(status)")
        XCTAssertFalse(status.stdout.contains("PROBLEM"), "\(status)")

        // The same exit refuses an account without a pass: admission really is "pass".
        let bare = try federation.makeClient("no-pass")
        try bare.start(subscription: federation.subscriptionPath)
        try waitForExit(bare, federation)
        let bareTag = "nopass-\(UUID().uuidString)"
        let refused = try bare.curlHTTP(federation.url(tag: bareTag), user: "country-de", extra: ["-i"], timeout: 20)
        print("pass: an account without a pass at the pass-admission exit: \(HTTPAnswer(refused))")
        XCTAssertNotEqual(HTTPAnswer(refused).status, 200, "\(refused)")
        XCTAssertTrue(federation.fileServer.sources(tagged: bareTag).isEmpty, "an account without a pass reached the site")
    }

    func testExpiredPassAnswers502AndStatusSaysExpired() throws {
        let federation = try Self.shared.running()
        let secret = try secret(federation)
        // Issued for 1 day, 3 days ago.
        let client = try clientWithPass("expired", federation) { account in
            try PassFile.issue(secret: secret, accountID: account, days: 1, quotaBytes: 0, now: WallClock.now() - 3 * 86_400)
        }
        let tag = "expired-\(UUID().uuidString)"
        let (answer, result) = try fetch(client, federation.url(tag: tag)) { $0.body.contains("expired") }
        print("pass: expired pass: \(answer)")
        XCTAssertEqual(answer.status, 502, "\(result)")
        XCTAssertTrue(answer.body.contains("expired"), "\(answer)")
        XCTAssertTrue(federation.fileServer.sources(tagged: tag).isEmpty)
        let status = try FederationCLI.run(["status", "--admin", client.adminAddress], logDirectory: federation.root)
        XCTAssertEqual(status.status, 0, "\(status)")
        XCTAssertTrue(status.stdout.contains("PROBLEM") && status.stdout.contains("expired"), "montana status must show the problem:\n\(status)")
        print("pass: montana status: \(status.stdout.split(separator: "\n").first { $0.contains("PROBLEM") } ?? "")")
    }

    func testQuotaIsEnforcedAfterItIsUsedUp() throws {
        let federation = try Self.shared.running()
        let secret = try secret(federation)
        let client = try clientWithPass("quota", federation) { account in
            try PassFile.issue(secret: secret, accountID: account, days: 1, quotaBytes: Self.quotaBytes, now: WallClock.now())
        }
        // Within the quota when it starts: the whole 150,000-byte file comes through.
        let bigTag = "quota-big-\(UUID().uuidString)"
        let (big, bigResult) = try fetch(client, federation.url(Self.bigFile, tag: bigTag)) { $0.status == 200 }
        XCTAssertEqual(big.status, 200, "\(bigResult)\n\(client.diagnostics())")
        XCTAssertGreaterThanOrEqual(bigResult.stdout.count, Self.bigFileBytes)
        XCTAssertGreaterThan(UInt64(Self.bigFileBytes), Self.quotaBytes)
        // The next request finds the quota used up.
        let tag = "quota-next-\(UUID().uuidString)"
        let next = try client.curlHTTP(federation.url(tag: tag), user: "country-de", extra: ["-i"], timeout: 20)
        let answer = HTTPAnswer(next)
        print("pass: after \(bigResult.stdout.count) bytes on a \(Self.quotaBytes)-byte quota: \(answer)")
        XCTAssertEqual(answer.status, 502, "\(next)")
        XCTAssertTrue(answer.body.contains("quota"), "\(answer)")
        XCTAssertTrue(federation.fileServer.sources(tagged: tag).isEmpty, "a request over the quota reached the site")
    }

    func testPassOfAForeignIssuerIsRefused() throws {
        let federation = try Self.shared.running()
        let (_, foreignSecret) = try Alliance.create(name: "Another alliance", open: false)
        let client = try clientWithPass("foreign", federation) { account in
            try PassFile.issue(secret: foreignSecret, accountID: account, days: 30, quotaBytes: 0, now: WallClock.now())
        }
        let tag = "foreign-\(UUID().uuidString)"
        let (answer, result) = try fetch(client, federation.url(tag: tag)) { $0.body.contains("foreign issuer") }
        print("pass: foreign issuer: \(answer)")
        XCTAssertEqual(answer.status, 502, "\(result)")
        XCTAssertTrue(answer.body.contains("foreign issuer"), "\(answer)")
        XCTAssertTrue(federation.fileServer.sources(tagged: tag).isEmpty)
    }
}
