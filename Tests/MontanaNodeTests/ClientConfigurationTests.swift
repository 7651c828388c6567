import Foundation
import MontanaClient
import MontanaCrypto
import MontanaWire
import XCTest
@testable import MontanaNode

final class ClientConfigurationTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws {
        fixture = try ConfigFixture()
    }

    override func tearDown() {
        fixture = nil
    }

    private func parse(_ text: String) throws(ConfigurationError) -> ClientConfiguration {
        try ClientConfiguration.parse(text, file: "client.toml", baseDirectory: fixture.directory)
    }

    private func error(_ text: String) -> ConfigurationError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error
        }
    }

    func test_fullClientConfigurationLoads() throws {
        let text = """
        [client]
        account_key = "keys/account.key"
        socks = "127.0.0.1:1081"
        http = "[::1]:8080"
        country = "SE"
        username = "me"
        password = "secret"
        alliance = "00112233-4455-6677-8899-aabbccddeeff"
        [log]
        level = "warning"
        """ + (try ConfigFixture.peer(name: "members", country: "SE", endpoint: "127.0.0.1:7443"))
        let path = try fixture.write(text, to: "client.toml")
        let config = try ClientConfiguration.load(path: path)
        XCTAssertEqual(config.account.publicKey, fixture.account.publicKey)
        XCTAssertEqual(config.socks, HostPort(host: "127.0.0.1", port: 1081))
        XCTAssertEqual(config.http, HostPort(host: "::1", port: 8080))
        XCTAssertNil(config.mixed)
        XCTAssertEqual(config.defaultExit, .country("SE"))
        XCTAssertEqual(config.credentials, ProxyCredentials(username: "me", password: "secret"))
        XCTAssertEqual(config.alliance, Hex.decode("00112233445566778899aabbccddeeff"))
        XCTAssertEqual(config.members.count, 1)
        XCTAssertEqual(config.logLevel, .warning)
        XCTAssertEqual(config.warnings, [])
    }

    func test_defaultsAreLoopbackSOCKSAndAutomaticExit() throws {
        let config = try parse("[client]\naccount_key = \"keys/account.key\"\n")
        XCTAssertEqual(config.socks, HostPort(host: "127.0.0.1", port: 1080))
        XCTAssertNil(config.http)
        XCTAssertEqual(config.defaultExit, .automatic)
        XCTAssertNil(config.credentials)
        XCTAssertEqual(config.warnings.count, 1, "no members warns: \(config.warnings)")
    }

    func test_nodeKeyIsNotAnAccountKey() {
        let e = error("[client]\naccount_key = \"keys/identity.key\"\n")
        XCTAssertEqual(e?.key, "client.account_key")
        XCTAssertTrue(e?.description.contains("expected a account identity") ?? false, "\(String(describing: e))")
    }

    func test_listenerErrorsAreNamed() {
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\nhttp = \"127.0.0.1:0\"\n")?.description,
                       "client.toml: client.http: \"127.0.0.1:0\" is not host:port (port must be 1-65535)")
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\nsocks = \"\"\n")?.key, "client.socks")
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\nmixed = \"127.0.0.1:1080\"\n")?.description,
                       "client.toml: client.mixed: 127.0.0.1:1080 is already used by client.socks")
    }

    func test_usernameWithoutPasswordIsRefused() {
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\nusername = \"me\"\n")?.key, "client.password")
    }

    func test_openProxyWithoutCredentialsWarns() throws {
        let config = try parse("[client]\naccount_key = \"keys/account.key\"\nsocks = \"0.0.0.0:1080\"\n")
        XCTAssertTrue(config.warnings.contains { $0.contains("client.socks 0.0.0.0:1080 is not loopback") }, "\(config.warnings)")
    }

    func test_unknownKeyAndBadCountryAreNamed() {
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\nsock = \"127.0.0.1:1\"\n"),
                       .unknownKey(file: "client.toml", key: "client.sock", suggestion: "client.socks"))
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\ncountry = \"Germany\"\n")?.key, "client.country")
        XCTAssertEqual(error("[clients]\n")?.description, "client.toml: clients: unknown key (did you mean client?)")
    }

    func test_memberErrorsNameTheMember() throws {
        let good = try ConfigFixture.peer(name: "members")
        let bad = try ConfigFixture.peer(name: "members", endpoint: "no-port")
        XCTAssertEqual(error("[client]\naccount_key = \"keys/account.key\"\n" + good + bad)?.key, "members[1].endpoint")
    }

    func test_templateWithMembersParsesBack() throws {
        let member = PeerConfiguration(nodeID: fixture.identity.nodeID, kemPublicKey: fixture.kem.publicKey,
                                       endpoint: HostPort(host: "127.0.0.1", port: 7443), country: "DE", roles: [.front, .exit])
        let text = ClientConfiguration.template(accountKeyPath: "keys/account.key", members: [member])
        let config = try parse(text)
        XCTAssertEqual(config.members.map(\.nodeID), [fixture.identity.nodeID])
        XCTAssertEqual(config.members.first?.kemPublicKey, fixture.kem.publicKey)
        XCTAssertEqual(config.members.first?.roles, [.front, .exit])
        XCTAssertEqual(config.socks, ClientConfiguration.defaultSOCKS)
        XCTAssertEqual(config.warnings, [])
    }

    func test_templateWithoutMembersParsesBack() throws {
        let config = try parse(ClientConfiguration.template(accountKeyPath: "keys/account.key"))
        XCTAssertEqual(config.members.count, 0)
    }
}
