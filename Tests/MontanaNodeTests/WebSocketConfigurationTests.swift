import Foundation
import MontanaTransport
import XCTest
@testable import MontanaNode

/// `[carriers.ws]` (T2) in node.toml: defaults, and every bad value names file, key and problem.
final class WebSocketConfigurationTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws { fixture = try ConfigFixture() }
    override func tearDown() { fixture = nil }

    static let path = "/ws-abcdefghijklmnopqrstuv"

    func test_wsSectionLoadsWithDefaults() throws {
        let config = try fixture.parseNode(fixture.nodeText(extra: "[carriers.ws]\nlisten = \"127.0.0.1:8080\"\npath = \"\(Self.path)\"\ntrusted_proxies = [\"127.0.0.1\"]\n"))
        let t2 = try XCTUnwrap(config.webSocket)
        XCTAssertEqual(t2.listen, HostPort(host: "127.0.0.1", port: 8080))
        XCTAssertEqual(t2.path, Self.path)
        XCTAssertEqual(t2.publicPort, 443)
        XCTAssertNil(t2.tlsCert)
        XCTAssertEqual(t2.trustedProxies, ["127.0.0.1"])
        XCTAssertNil(try fixture.parseNode(fixture.nodeText(extra: "[carriers.ws]\nenabled = false\n")).webSocket)
        XCTAssertNil(try fixture.parseNode(fixture.nodeText()).webSocket)
    }

    func test_wsErrorsNameFileKeyAndProblem() {
        func check(_ extra: String, _ key: String, _ problem: String, line: UInt = #line) {
            guard let error = fixture.nodeError(fixture.nodeText(extra: extra)) else { return XCTFail("accepted \(extra)", line: line) }
            XCTAssertTrue(error.description.hasPrefix("node.toml: \(key)"), error.description, line: line)
            XCTAssertTrue(error.description.contains(problem), error.description, line: line)
        }
        let ok = "[carriers.ws]\nlisten = \"127.0.0.1:8080\"\npath = \"\(Self.path)\"\n"
        check("[carriers.ws]\npath = \"\(Self.path)\"\n", "carriers.ws.listen", "required")
        check("[carriers.ws]\nlisten = \"127.0.0.1:8080\"\n", "carriers.ws.path", "secret path")
        check("[carriers.ws]\nlisten = \"127.0.0.1:8080\"\npath = \"/short\"\n", "carriers.ws.path", "at least 16")
        check("[carriers.ws]\nlisten = \"0.0.0.0:7443\"\npath = \"\(Self.path)\"\n", "carriers.ws.listen", "T0 transit port")
        check(ok + "tls_cert = \"ws.crt\"\n", "carriers.ws.tls_key", "set both")
        check(ok + "trusted_proxies = [\"cdn.example\"]\n", "carriers.ws.trusted_proxies", "not an IP address")
        check(ok + "public_port = 0\n", "carriers.ws.public_port", "out of range")
        check(ok + "sni = \"a b\"\n", "carriers.ws.sni", "not a host name")
        check(ok + "pth = 1\n", "carriers.ws.pth", "unknown key")
    }
}
