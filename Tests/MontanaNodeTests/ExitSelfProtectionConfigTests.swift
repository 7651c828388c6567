import Foundation
import MontanaExit
import XCTest
@testable import MontanaNode

/// The config keys of exit self-protection and bounded accounting, read from real node.toml text.
final class ExitSelfProtectionConfigTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws {
        fixture = try ConfigFixture()
    }

    private func exitSection(_ lines: String) -> [(String, String)] {
        [("deny = [\"8000-8100\"]", "deny = [\"8000-8100\"]\n" + lines)]
    }

    func test_allowPrivateIsReadIntoThePolicyAndAllowStaysSeparate() throws {
        let text = fixture.nodeText(replacing: exitSection("allow_private = [\"127.0.0.0/8\", \"::1\", \"25\"]"))
        let policy = try XCTUnwrap(fixture.parseNode(text).exit?.policy)
        XCTAssertEqual(policy, try ExitPolicyConfiguration.parse(allow: ["443", "example.org", "198.51.100.0/24"], deny: ["8000-8100"],
                                                                 allowPrivate: ["127.0.0.0/8", "::1", "25"], mode: "default-deny"))
        XCTAssertEqual(try XCTUnwrap(fixture.parseNode(fixture.nodeText()).exit?.policy).allowPrivate, [], "off unless written")
    }

    func test_badAllowPrivateEntryNamesFileKeyIndexAndProblem() {
        let hostName = fixture.nodeError(fixture.nodeText(replacing: exitSection("allow_private = [\"10.0.0.0/8\", \"internal.example\"]")))
        XCTAssertEqual(hostName?.description, "node.toml: exit.allow_private[1]: \"internal.example\": allow_private takes address "
                       + "ranges and ports only: a host name could resolve to any private address (DNS rebinding)")
        let badNetwork = fixture.nodeError(fixture.nodeText(replacing: exitSection("allow_private = [\"10.1.2.3/8\"]")))
        XCTAssertEqual(badNetwork?.description,
                       "node.toml: exit.allow_private[0]: \"10.1.2.3/8\": address has bits set beyond the prefix (did you mean 10.0.0.0/8?)")
    }

    func test_accountingBoundsAreReadFromLimitsWithDefaultsAndRanges() throws {
        let defaults = try fixture.parseNode(fixture.nodeText()).limits
        XCTAssertEqual(defaults.accountingIdleDays, 30)
        XCTAssertEqual(defaults.accountingMaxRows, 100_000)
        let set = try fixture.parseNode(fixture.nodeText(replacing: [("[limits]\n", "[limits]\naccounting_idle_days = 7\naccounting_max_rows = 500\n")])).limits
        XCTAssertEqual(set.accountingIdleDays, 7)
        XCTAssertEqual(set.accountingMaxRows, 500)
        let zero = fixture.nodeError(fixture.nodeText(replacing: [("[limits]\n", "[limits]\naccounting_idle_days = 0\n")]))
        XCTAssertTrue(zero?.description.hasPrefix("node.toml: limits.accounting_idle_days:") ?? false, "\(String(describing: zero))")
        let huge = fixture.nodeError(fixture.nodeText(replacing: [("[limits]\n", "[limits]\naccounting_max_rows = 99999999999\n")]))
        XCTAssertTrue(huge?.description.hasPrefix("node.toml: limits.accounting_max_rows:") ?? false, "\(String(describing: huge))")
    }
}
