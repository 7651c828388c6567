import Foundation
import MontanaCrypto
import MontanaExit
import MontanaWire
import XCTest
@testable import MontanaNode

final class NodeConfigurationTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws {
        fixture = try ConfigFixture()
    }

    override func tearDown() {
        fixture = nil
    }

    private func assertError(_ text: String, key: String, contains problem: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let error = fixture.nodeError(text) else {
            return XCTFail("expected an error at \(key)", file: file, line: line)
        }
        XCTAssertEqual(error.file, "node.toml", file: file, line: line)
        XCTAssertEqual(error.key, key, "\(error)", file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix("node.toml: \(key): "), error.description, file: file, line: line)
        XCTAssertTrue(error.description.contains(problem), error.description, file: file, line: line)
    }

    func test_fullConfigurationLoadsWithResolvedValues() throws {
        let peer = try ConfigFixture.peer(endpoint: "[2001:db8::7]:7443")
        let path = try fixture.write(fixture.nodeText(extra: peer), to: "node.toml")
        let config = try NodeConfiguration.load(path: path)

        XCTAssertEqual(config.file, path)
        XCTAssertEqual(config.nodeID, fixture.identity.nodeID)
        XCTAssertEqual(config.kem.publicKey, fixture.kem.publicKey)
        XCTAssertEqual(config.identityKeyPath, fixture.directory + "/keys/identity.key")
        XCTAssertEqual(config.roles, [.front, .exit])
        XCTAssertEqual(config.country, "DE")
        XCTAssertEqual(config.capacity, .high)
        XCTAssertEqual(config.operatorLabel, "Example Ops")
        XCTAssertEqual(config.alliance, Hex.decode("00112233445566778899aabbccddeeff"))
        XCTAssertEqual(config.listen.transit, HostPort(host: "0.0.0.0", port: 7443))
        XCTAssertEqual(config.listen.publicEndpoint, HostPort(host: "203.0.113.5", port: 7443))
        XCTAssertEqual(config.listen.admin, HostPort(host: "127.0.0.1", port: 9090))
        XCTAssertEqual(config.limits, NodeLimits(circuitsPerSource: 32, circuitsTotal: 1024, handshakesPerSecond: 100,
                                                 streamsPerSession: 128, egressOpenTimeoutSeconds: 20, egressIdleTimeoutSeconds: 120))
        XCTAssertEqual(config.logLevel, .debug)
        XCTAssertEqual(config.warnings, [])

        let exit = try XCTUnwrap(config.exit)
        guard case .allowList(let accounts) = exit.admission else { return XCTFail("admission \(exit.admission.label)") }
        XCTAssertEqual(accounts, [fixture.account.accountID])
        XCTAssertEqual(exit.policy, try ExitPolicyConfiguration.parse(allow: ["443", "example.org", "198.51.100.0/24"],
                                                                      deny: ["8000-8100"], mode: "default-deny"))

        XCTAssertEqual(config.peers.count, 1)
        XCTAssertEqual(config.peers[0].endpoint, HostPort(host: "2001:db8::7", port: 7443))
        XCTAssertEqual(config.peers[0].kemPublicKey.count, KEMKey.publicKeySize)
        XCTAssertEqual(config.peers[0].country, "NL")
    }

    func test_minimalFrontUsesDefaults() throws {
        let config = try fixture.parseNode("""
        [node]
        identity_key = "keys/identity.key"
        kem_key = "keys/kem.key"
        roles = ["front"]
        [listen]
        transit = "198.51.100.1:443"
        """)
        XCTAssertNil(config.exit)
        XCTAssertNil(config.country)
        XCTAssertEqual(config.capacity, .standard)
        XCTAssertEqual(config.limits, NodeLimits())
        XCTAssertEqual(config.limits.streamsPerSession, 256)
        XCTAssertEqual(config.listen.publicHost, "198.51.100.1")
        XCTAssertNil(config.listen.admin)
        XCTAssertEqual(config.logLevel, .info)
    }

    func test_portOutOfRangeNamesFileKeyAndRange() {
        guard let error = fixture.nodeError(fixture.nodeText(replacing: [("0.0.0.0:7443", "0.0.0.0:99999")])) else {
            return XCTFail("accepted port 99999")
        }
        XCTAssertEqual(error.description, "node.toml: listen.transit: \"0.0.0.0:99999\" is not host:port (port must be 1-65535)")
    }

    func test_unbracketedIPv6IsExplained() {
        assertError(fixture.nodeText(replacing: [("0.0.0.0:7443", "::1:7443")]), key: "listen.transit", contains: "brackets")
    }

    func test_unknownKeySuggestsTheClosestOne() {
        let text = fixture.nodeText(replacing: [("transit =", "transitt =")])
        XCTAssertEqual(fixture.nodeError(text), .unknownKey(file: "node.toml", key: "listen.transitt", suggestion: "listen.transit"))
        XCTAssertEqual(fixture.nodeError(text)?.description, "node.toml: listen.transitt: unknown key (did you mean listen.transit?)")
    }

    func test_unknownSectionSuggestsTheClosestOne() {
        let text = fixture.nodeText(extra: "[limit]\ncircuits_total = 5\n")
        XCTAssertEqual(fixture.nodeError(text), .unknownKey(file: "node.toml", key: "limit", suggestion: "limits"))
    }

    func test_unrelatedUnknownKeyHasNoSuggestion() {
        let text = fixture.nodeText(replacing: [("[log]\n", "[log]\nbananas = 1\n")])
        XCTAssertEqual(fixture.nodeError(text), .unknownKey(file: "node.toml", key: "log.bananas", suggestion: nil))
    }

    func test_badCountryNamesKeyAndCode() {
        assertError(fixture.nodeText(replacing: [("country = \"DE\"", "country = \"XX\"")]),
                    key: "node.country", contains: "\"XX\" is not an assigned ISO 3166-1 alpha-2 country code")
        assertError(fixture.nodeText(replacing: [("country = \"DE\"", "country = \"de\"")]),
                    key: "node.country", contains: "write it upper-case")
    }

    func test_exitWithoutCountryIsRefused() {
        assertError(fixture.nodeText(replacing: [("country = \"DE\"\n", "")]), key: "node.country", contains: "required")
    }

    func test_missingKeyFileNamesTheKeyAndThePath() {
        assertError(fixture.nodeText(replacing: [("keys/identity.key", "keys/nope.key")]),
                    key: "node.identity_key", contains: fixture.directory + "/keys/nope.key")
    }

    func test_groupReadableKeyFileIsRefusedWithChmodAdvice() throws {
        XCTAssertEqual(chmod(fixture.directory + "/keys/kem.key", 0o644), 0)
        assertError(fixture.nodeText(), key: "node.kem_key", contains: "chmod 600")
    }

    func test_keyFileOfTheWrongKindIsRefused() {
        assertError(fixture.nodeText(replacing: [("keys/kem.key", "keys/identity.key")]),
                    key: "node.kem_key", contains: "expected a node preface key (X-Wing seed) key file")
    }

    func test_wrongHexLengthNamesPeerAndField() throws {
        let peer = try ConfigFixture.peer()
        let kemLine = try XCTUnwrap(peer.split(separator: "\n").first { $0.hasPrefix("kem_pk") })
        let text = fixture.nodeText(extra: peer.replacingOccurrences(of: kemLine, with: "kem_pk = \"abcd\""))
        assertError(text, key: "peers[0].kem_pk", contains: "expected 2432 hex digits")
    }

    func test_nonHexNodeIDIsRefused() throws {
        let text = fixture.nodeText(extra: try ConfigFixture.peer(id: String(repeating: "g", count: 64)))
        assertError(text, key: "peers[0].node_id", contains: "not hex")
    }

    func test_duplicatePeerNamesTheSecondAndTheFirst() throws {
        let id = Hex.encode(SecureRandom.bytes(32))
        let text = fixture.nodeText(extra: try ConfigFixture.peer(id: id) + ConfigFixture.peer(id: id, country: "FR"))
        assertError(text, key: "peers[1].node_id", contains: "duplicate: peers[0]")
    }

    func test_ownNodeIDAsPeerIsRefused() throws {
        let text = fixture.nodeText(extra: try ConfigFixture.peer(id: fixture.identity.nodeID.hex))
        assertError(text, key: "peers[0].node_id", contains: "own id")
    }

    func test_badPolicyEntryNamesItsIndex() {
        let text = fixture.nodeText(replacing: [("\"example.org\"", "\"10.0.0.1/8\"")])
        assertError(text, key: "exit.allow[1]", contains: "\"10.0.0.1/8\": address has bits set beyond the prefix (did you mean 10.0.0.0/8?)")
    }

    func test_badDenyEntryAndModeAreNamed() {
        assertError(fixture.nodeText(replacing: [("\"8000-8100\"", "\"8100-8000\"")]), key: "exit.deny[0]", contains: "backwards")
        assertError(fixture.nodeText(replacing: [("\"default-deny\"", "\"deny-all\"")]), key: "exit.policy", contains: "default-allow")
    }

    func test_emptyAllowListAdmissionIsRefused() {
        let text = fixture.nodeText(replacing: [("allow_accounts = [\"\(Hex.encode(fixture.account.accountID))\"]", "allow_accounts = []")])
        assertError(text, key: "exit.allow_accounts", contains: "admit no one")
    }

    func test_passIssuerFromPublicKeyFile() throws {
        let issuer = try IdentityKey.generate()
        _ = try fixture.write("{\"identity_pk\": \"\(Hex.encode(issuer.publicKey))\"}", to: "issuer.pub.json")
        let config = try fixture.parseNode(fixture.nodeText(replacing: [
            ("admission = \"allow-list\"", "admission = \"pass\"\npass_issuers = [\"issuer.pub.json\"]"),
        ]))
        guard case .pass(let issuers, let allowList)? = config.exit?.admission else { return XCTFail("not pass admission") }
        XCTAssertEqual(issuers, [issuer.publicKey])
        XCTAssertEqual(allowList, [fixture.account.accountID])
    }

    func test_badPassIssuerIsNamed() {
        assertError(fixture.nodeText(replacing: [("admission = \"allow-list\"", "admission = \"pass\"\npass_issuers = [\"abc\"]")]),
                    key: "exit.pass_issuers[0]", contains: "3904 hex digits")
        assertError(fixture.nodeText(replacing: [("admission = \"allow-list\"", "admission = \"pass\"\npass_issuers = [\"none.pub.json\"]")]),
                    key: "exit.pass_issuers[0]", contains: "none.pub.json: cannot read")
    }

    func test_wrongTypeIsNamed() {
        let text = fixture.nodeText(replacing: [("circuits_total = 1024", "circuits_total = \"1024\"")])
        XCTAssertEqual(fixture.nodeError(text), .wrongType(file: "node.toml", key: "limits.circuits_total", expected: "an integer", found: "a string"))
    }

    func test_badArrayElementIsNamedByIndex() {
        assertError(fixture.nodeText(replacing: [("roles = [\"front\", \"exit\"]", "roles = [\"front\", \"relay\"]")]),
                    key: "node.roles[1]", contains: "unknown role \"relay\"")
    }

    func test_limitOutOfRangeIsRefused() {
        assertError(fixture.nodeText(replacing: [("streams_per_session = 128", "streams_per_session = 0")]),
                    key: "limits.streams_per_session", contains: "out of range")
    }

    func test_syntaxErrorNamesFileAndLine() {
        guard case .syntax(let file, let line, _, _)? = fixture.nodeError("[node]\nroles = [\"front\"\n") else {
            return XCTFail("expected a syntax error")
        }
        XCTAssertEqual(file, "node.toml")
        XCTAssertGreaterThanOrEqual(line, 2)
    }

    func test_unreadableFileIsNamed() {
        XCTAssertThrowsError(try NodeConfiguration.load(path: fixture.directory + "/absent.toml")) { error in
            XCTAssertEqual(error as? ConfigurationError, .unreadable(file: fixture.directory + "/absent.toml", reason: "no such file"))
        }
    }

    func test_exitSectionWithoutExitRoleIsAWarning() throws {
        let config = try fixture.parseNode(fixture.nodeText(replacing: [("roles = [\"front\", \"exit\"]", "roles = [\"front\"]")]))
        XCTAssertNil(config.exit)
        XCTAssertTrue(config.warnings.contains { $0.contains("[exit] is ignored") }, "\(config.warnings)")
    }

    func test_nonLoopbackAdminAndWildcardWithoutPublicHostWarn() throws {
        let config = try fixture.parseNode(fixture.nodeText(replacing: [
            ("admin = \"127.0.0.1:9090\"", "admin = \"0.0.0.0:9090\""), ("public_host = \"203.0.113.5\"\n", ""),
        ]))
        XCTAssertEqual(config.warnings.count, 2, "\(config.warnings)")
        XCTAssertTrue(config.warnings.contains { $0.contains("listen.admin 0.0.0.0:9090 is not a loopback address") })
        XCTAssertTrue(config.warnings.contains { $0.contains("listen.public_host is not set") })
        XCTAssertNil(config.listen.publicEndpoint)
    }

    func test_templateParsesBackIntoAValidConfiguration() throws {
        let text = NodeConfiguration.template(identityKeyPath: "keys/identity.key", kemKeyPath: "keys/kem.key",
                                              nodeID: fixture.identity.nodeID, kemPublicKey: fixture.kem.publicKey,
                                              country: "NL", publicHost: "203.0.113.9")
        XCTAssertTrue(text.contains("# This node's id: \(fixture.identity.nodeID.hex)"))
        XCTAssertTrue(text.contains("# kem_pk = \"\(Hex.encode(fixture.kem.publicKey))\""))
        let path = try fixture.write(text, to: "node.toml")
        let config = try NodeConfiguration.load(path: path)
        XCTAssertEqual(config.nodeID, fixture.identity.nodeID)
        XCTAssertEqual(config.roles, [.front, .exit])
        XCTAssertEqual(config.country, "NL")
        XCTAssertEqual(config.listen.publicEndpoint, HostPort(host: "203.0.113.9", port: 7443))
        XCTAssertEqual(config.limits, NodeLimits())
        XCTAssertEqual(config.exit?.policy, ExitPolicyConfiguration())
        XCTAssertEqual(config.warnings, [])
    }

    func test_frontOnlyTemplateParsesBack() throws {
        let text = NodeConfiguration.template(identityKeyPath: fixture.directory + "/keys/identity.key",
                                              kemKeyPath: fixture.directory + "/keys/kem.key",
                                              nodeID: fixture.identity.nodeID, roles: [.front])
        let config = try NodeConfiguration.parse(text, file: "node.toml", baseDirectory: "/nonexistent")
        XCTAssertEqual(config.roles, [.front])
        XCTAssertNil(config.exit)
    }
}
