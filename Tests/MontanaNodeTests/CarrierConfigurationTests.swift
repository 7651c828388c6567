import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire
import XCTest
@testable import MontanaNode

/// `[carriers.obfs4]` in node.toml and `carriers` in client.toml (T3 and the ladder): every bad
/// value names the file, the key and the problem.
final class CarrierConfigurationTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws { fixture = try ConfigFixture() }
    override func tearDown() { fixture = nil }

    func test_obfs4SectionLoadsWithDefaults() throws {
        let config = try fixture.parseNode(fixture.nodeText(extra: "[carriers.obfs4]\nlisten = \"0.0.0.0:7444\"\n"))
        let t3 = try XCTUnwrap(config.obfs4)
        XCTAssertEqual(t3.listen, HostPort(host: "0.0.0.0", port: 7444))
        XCTAssertEqual(t3.binary, "obfs4proxy")
        XCTAssertEqual(t3.iatMode, 0)
        XCTAssertTrue(t3.stateDirectory.hasSuffix("/obfs4"), t3.stateDirectory)
        XCTAssertEqual(t3.configKey, "node.toml: [carriers.obfs4]")
        XCTAssertNil(try fixture.parseNode(fixture.nodeText(extra: "[carriers.obfs4]\nenabled = false\n")).obfs4)
        XCTAssertNil(try fixture.parseNode(fixture.nodeText()).obfs4)
    }

    func test_obfs4ErrorsNameFileKeyAndProblem() {
        func check(_ extra: String, _ key: String, _ problem: String, line: UInt = #line) {
            guard let error = fixture.nodeError(fixture.nodeText(extra: extra)) else { return XCTFail("accepted \(extra)", line: line) }
            XCTAssertTrue(error.description.hasPrefix("node.toml: \(key)"), error.description, line: line)
            XCTAssertTrue(error.description.contains(problem), error.description, line: line)
        }
        check("[carriers.obfs4]\nenabled = true\n", "carriers.obfs4.listen", "required")
        check("[carriers.obfs4]\nlisten = \"0.0.0.0:7443\"\n", "carriers.obfs4.listen", "T0 transit port")
        check("[carriers.obfs4]\nlisten = \"0.0.0.0:7444\"\niat_mode = 3\n", "carriers.obfs4.iat_mode", "out of range")
        check("[carriers.obfs4]\nlisten = \"0.0.0.0:7444\"\nbinary = \"\"\n", "carriers.obfs4.binary", "empty")
        check("[carriers.obfs4]\nlisten = \"0.0.0.0:7444\"\niat = 1\n", "carriers.obfs4.iat", "unknown key")
        check("[carriers.meek]\nlisten = \"0.0.0.0:7444\"\n", "carriers.meek", "unknown key")
    }

    func test_t1SectionLoadsAndItsErrorsNameFileKeyAndProblem() throws {
        let config = try fixture.parseNode(fixture.nodeText(extra: """
        [carriers.tls]
        listen = "0.0.0.0:443"
        cover = "127.0.0.1:8443"
        sni = ["www.example.org", "example.org"]
        key = "t1.key"
        short_ids = ["5e1f00aa", "01"]
        public_port = 8443
        """))
        let t1 = try XCTUnwrap(config.tls)
        XCTAssertEqual(t1.listen, HostPort(host: "0.0.0.0", port: 443))
        XCTAssertEqual(t1.cover, HostPort(host: "127.0.0.1", port: 8443))
        XCTAssertEqual(t1.serverNames, ["www.example.org", "example.org"])
        XCTAssertEqual(t1.shortIDs, [[0x5e, 0x1f, 0x00, 0xaa], [0x01]])
        XCTAssertEqual(t1.publicPort, 8443)
        XCTAssertTrue(t1.keyPath.hasSuffix("/t1.key"), t1.keyPath)
        func check(_ extra: String, _ key: String, _ problem: String, line: UInt = #line) {
            guard let error = fixture.nodeError(fixture.nodeText(extra: "[carriers.tls]\n" + extra)) else { return XCTFail("accepted \(extra)", line: line) }
            XCTAssertTrue(error.description.hasPrefix("node.toml: \(key)"), error.description, line: line)
            XCTAssertTrue(error.description.contains(problem), error.description, line: line)
        }
        let base = "listen = \"0.0.0.0:443\"\ncover = \"127.0.0.1:8443\"\nkey = \"t1.key\"\n"
        check("cover = \"127.0.0.1:8443\"\nkey = \"t1.key\"\n", "carriers.tls.listen", "required")
        check("listen = \"0.0.0.0:443\"\nkey = \"t1.key\"\n", "carriers.tls.cover", "real TLS 1.3 site")
        check("listen = \"0.0.0.0:443\"\ncover = \"127.0.0.1:8443\"\n", "carriers.tls.key", "montana keygen t1")
        check(base + "short_ids = [\"xyz\"]\n", "carriers.tls.short_ids", "hex of 1 to 8 bytes")
        check(base + "short_ids = [\"00112233445566778899\"]\n", "carriers.tls.short_ids", "hex of 1 to 8 bytes")
        check(base + "sni = [\"a b\"]\n", "carriers.tls.sni", "not a host name")
        check(base + "public_port = 70000\n", "carriers.tls.public_port", "out of range")
        check(base + "covers = 1\n", "carriers.tls.covers", "unknown key")
    }

    func test_t1KeyModeUniversalTakesTheAlliancesNamesAndShortIDsOwnNeedsItsOwn() throws {
        let universalKey = T1FrontKey(), ownKey = T1FrontKey()
        let universal = UniversalT1(x25519PublicKey: universalKey.publicKey, shortIDs: [[0xaa, 0xbb]], serverName: "cover.alliance.example", cover: "")
        var settings = TLSCarrierSettings(listen: HostPort(host: "0.0.0.0", port: 443), cover: HostPort(host: "127.0.0.1", port: 8443),
                                          serverNames: [], keyPath: "t1.key", shortIDs: [], publicPort: nil, configKey: "node.toml: [carriers.tls]")
        let u = try T1Listener.parameters(settings: settings, publicKey: universalKey.publicKey, universal: universal, defaultShortID: [1, 2])
        XCTAssertEqual(u.mode, .universal)
        XCTAssertEqual(u.names, ["cover.alliance.example"])
        XCTAssertEqual(u.shortIDs, [[0xaa, 0xbb]])
        XCTAssertThrowsError(try T1Listener.parameters(settings: settings, publicKey: ownKey.publicKey, universal: universal, defaultShortID: [1, 2])) {
            XCTAssertTrue("\($0)".contains("node.toml: [carriers.tls]") && "\($0)".contains("sni") && "\($0)".contains("universal key"), "\($0)")
        }
        settings.serverNames = ["www.example.org"]
        let own = try T1Listener.parameters(settings: settings, publicKey: ownKey.publicKey, universal: universal, defaultShortID: [1, 2])
        XCTAssertEqual(own.mode, .own)
        XCTAssertEqual(own.names, ["www.example.org"])
        XCTAssertEqual(own.shortIDs, [[1, 2]], "an own-key front's default short id comes from its node id")
    }

    func test_clientLadderAndMemberCarriers() throws {
        let peer = try ConfigFixture.peer(name: "members")
        let cert = String(repeating: "A", count: 70)
        let text = "[client]\naccount_key = \"keys/account.key\"\ncarriers = [\"t3\", \"t0\"]\n" + peer
            + "carriers = [{ profile = \"t3\", endpoint = \"192.0.2.1:7444\", params = \"cert=\(cert)&iat-mode=1\" }]\n"
        let config = try ClientConfiguration.parse(text, file: "client.toml", baseDirectory: fixture.directory)
        XCTAssertEqual(config.carriers, [.t3, .t0])
        XCTAssertTrue(config.carriersConfigured)
        XCTAssertEqual(config.members.first?.carriers,
                       [CarrierEndpoint(profile: .t3, host: "192.0.2.1", port: 7444, params: ["cert": cert, "iat-mode": "1"])])
        let defaults = try ClientConfiguration.parse("[client]\naccount_key = \"keys/account.key\"\n", file: "client.toml",
                                                     baseDirectory: fixture.directory)
        XCTAssertEqual(defaults.carriers, [.t1, .t2, .t3, .t0])
        XCTAssertFalse(defaults.carriersConfigured)
    }

    func test_clientCarrierErrorsAreNamed() throws {
        func error(_ text: String) -> String {
            do {
                _ = try ClientConfiguration.parse("[client]\naccount_key = \"keys/account.key\"\n" + text, file: "client.toml",
                                                  baseDirectory: fixture.directory)
                return ""
            } catch { return error.description }
        }
        XCTAssertTrue(error("carriers = [\"t9\"]\n").hasPrefix("client.toml: client.carriers[0]: \"t9\" is not a carrier profile"))
        XCTAssertTrue(error("carriers = [\"t0\", \"t0\"]\n").contains("client.carriers[1]: t0 is listed twice"))
        XCTAssertTrue(error("carriers = []\n").contains("client.carriers: is empty"))
        let peer = try ConfigFixture.peer(name: "members")
        XCTAssertTrue(error(peer + "carriers = [{ profile = \"t3\", endpoint = \"192.0.2.1:7444\" }]\n")
            .contains("members[0].carriers[0].params: a t3 carrier needs cert="))
        XCTAssertTrue(error(peer + "carriers = [{ profile = \"t3\", endpoint = \"192.0.2.1:7444\", params = \"cert\" }]\n")
            .contains("members[0].carriers[0].params: \"cert\" is not key=value"))
        XCTAssertTrue(error(peer + "carriers = [{ profile = \"t1\", endpoint = \"192.0.2.1:443\", params = \"sid=aa&sni=a.example\" }]\n")
            .contains("members[0].carriers[0].params: a t1 carrier needs pbk="))
        XCTAssertTrue(error(peer + "carriers = [{ profile = \"t1\", endpoint = \"192.0.2.1:443\", params = \"pbk=\(String(repeating: "ab", count: 32))&sid=aa\" }]\n")
            .contains("no valid sni"))
        XCTAssertTrue(error(peer + "carriers = [{ profile = \"t0\", endpoint = \"192.0.2.1:7444\" }]\n")
            .contains("members[0].carriers[0].profile"))
    }
}
