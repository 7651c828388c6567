import XCTest
@testable import MontanaNode

final class HostPortTests: XCTestCase {
    func test_parsesNamesIPv4AndBracketedIPv6() throws {
        XCTAssertEqual(try HostPort(parsing: "example.org:443"), HostPort(host: "example.org", port: 443))
        XCTAssertEqual(try HostPort(parsing: "0.0.0.0:7443"), HostPort(host: "0.0.0.0", port: 7443))
        let v6 = try HostPort(parsing: "[2001:db8::1]:7443")
        XCTAssertEqual(v6, HostPort(host: "2001:db8::1", port: 7443))
        XCTAssertEqual(v6.description, "[2001:db8::1]:7443")
    }

    func test_rejectsWithAReason() {
        let cases: [(String, HostPortError)] = [
            ("example.org", .missingPort), ("example.org:", .invalidPort), ("h:0", .invalidPort), ("h:65536", .invalidPort),
            (":80", .emptyHost), ("::1:80", .unbracketedIPv6), ("[::1:80", .unclosedBracket), ("[::1]", .missingPort),
            ("a b:80", .invalidHost), ("h:-1", .invalidPort),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try HostPort(parsing: text), text) { XCTAssertEqual($0 as? HostPortError, expected, text) }
        }
    }

    func test_loopbackAndWildcard() throws {
        XCTAssertTrue(try HostPort(parsing: "127.0.0.1:1").isLoopback)
        XCTAssertTrue(try HostPort(parsing: "127.1.2.3:1").isLoopback)
        XCTAssertTrue(try HostPort(parsing: "[::1]:1").isLoopback)
        XCTAssertTrue(try HostPort(parsing: "localhost:1").isLoopback)
        XCTAssertFalse(try HostPort(parsing: "127.example.org:1").isLoopback)
        XCTAssertFalse(try HostPort(parsing: "0.0.0.0:1").isLoopback)
        XCTAssertTrue(try HostPort(parsing: "[::]:1").isWildcard)
    }

    func test_keySuggestionToleratesTyposOnly() {
        XCTAssertEqual(KeySuggestion.closest(to: "transitt", among: ["transit", "admin"]), "transit")
        XCTAssertEqual(KeySuggestion.closest(to: "Admin", among: ["transit", "admin"]), "admin")
        XCTAssertNil(KeySuggestion.closest(to: "zzz", among: ["transit", "admin"]))
    }
}
