import Foundation
import MontanaClient
import XCTest
@testable import MontanaNode

/// `exit_as_front` and `source` in `[client]` (issue 6 item 8).
final class ClientPrivacyConfigurationTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws {
        fixture = try ConfigFixture()
    }

    override func tearDown() {
        fixture = nil
    }

    private func parse(_ extra: String) throws(ConfigurationError) -> ClientConfiguration {
        try ClientConfiguration.parse("[client]\naccount_key = \"keys/account.key\"\n\(extra)\n", file: "client.toml",
                                      baseDirectory: fixture.directory)
    }

    private func error(_ extra: String) -> ConfigurationError? {
        do { _ = try parse(extra); return nil } catch { return error }
    }

    func test_exitAsFrontIsOffUnlessTheUserSaysSo() throws {
        let defaults = try parse("")
        XCTAssertFalse(defaults.exitAsFront)
        XCTAssertFalse(defaults.circuitOptions.exitAsFront)
        XCTAssertNil(defaults.source)
        XCTAssertNil(defaults.circuitOptions.sourceAddress)
        XCTAssertTrue(try parse("exit_as_front = true").circuitOptions.exitAsFront)
        XCTAssertFalse(try parse("exit_as_front = false").exitAsFront)
        XCTAssertEqual(error("exit_as_front = \"yes\"")?.key, "client.exit_as_front")
    }

    func test_sourceIsAnIPLiteralWithoutAPortAndErrorsNameTheKey() throws {
        let v4 = try parse("source = \"127.0.1.1\"")
        XCTAssertEqual(v4.source?.text, "127.0.1.1")
        XCTAssertEqual(v4.circuitOptions.sourceAddress?.ipAddress, "127.0.1.1")
        XCTAssertEqual(v4.circuitOptions.sourceAddress?.port, 0, "the port stays ephemeral")
        XCTAssertEqual(try parse("source = \"::1\"").source?.text, "::1")
        XCTAssertNil(try parse("source = \"\"").source, "empty means the OS chooses")
        for bad in ["localhost", "127.0.1.1:5000", "300.1.1.1", "[::1]"] {
            let found = error("source = \"\(bad)\"")
            XCTAssertEqual(found?.key, "client.source", bad)
            XCTAssertEqual(found?.file, "client.toml", bad)
            XCTAssertTrue("\(found.map { "\($0)" } ?? "")".contains("not an IPv4 or IPv6 address"), "\(String(describing: found))")
        }
    }

    func test_aSourceNoSocketCanBindIsReportedBeforeStart() throws {
        XCTAssertNil(try ClientSourceAddress(parsing: "127.0.1.1").bindProblem(), "any 127/8 address binds on Linux loopback")
        // 192.0.2.1 (TEST-NET-1) is on no interface here.
        let foreign = try parse("source = \"192.0.2.1\"")
        XCTAssertThrowsError(try ClientRuntime.checkSource(foreign)) { error in
            XCTAssertTrue("\(error)".contains("client.toml: client.source: cannot bind 192.0.2.1"), "\(error)")
        }
    }

    func test_theTemplateDocumentsBothKeysCommentedOut() throws {
        let text = ClientConfiguration.template(accountKeyPath: "keys/account.key")
        XCTAssertTrue(text.contains("# exit_as_front = false"))
        XCTAssertTrue(text.contains("# source = \"127.0.1.1\""))
        let config = try ClientConfiguration.parse(text, file: "client.toml", baseDirectory: fixture.directory)
        XCTAssertFalse(config.exitAsFront)
    }

    func test_probeIntervalDefaultsTo60AndIsBounded() throws {
        XCTAssertEqual(try parse("").probeIntervalSeconds, 60)
        XCTAssertEqual(try parse("probe_interval_seconds = 0").probeIntervalSeconds, 0, "0 turns feelers off")
        XCTAssertEqual(try parse("probe_interval_seconds = 300").probeIntervalSeconds, 300)
        let message = "\(error("probe_interval_seconds = -1").map { "\($0)" } ?? "no error")"
        XCTAssertTrue(message.contains("client.toml") && message.contains("probe_interval_seconds"), message)
    }
}
