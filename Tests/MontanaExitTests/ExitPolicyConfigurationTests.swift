import XCTest
@testable import MontanaExit

final class ExitPolicyConfigurationTests: XCTestCase {
    private func error(allow: [String] = [], deny: [String] = [], mode: String = "default-allow") -> String? {
        do {
            _ = try ExitPolicyConfiguration.parse(allow: allow, deny: deny, mode: mode)
            return nil
        } catch {
            return error.description
        }
    }

    func test_parsesEveryEntryKind() throws {
        let configuration = try ExitPolicyConfiguration.parse(
            allow: ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1", "443", "8000-8999", ".Example.COM", "*.test.", "localhost"],
            deny: [" 25 "], mode: "default-deny")
        XCTAssertEqual(configuration.mode, .defaultDeny)
        XCTAssertEqual(configuration.allow.map(describe), ["net 10.0.0.0/8", "net 192.0.2.7/32", "net 2001:db8::/32", "net ::1/128",
                                                         "ports 443-443", "ports 8000-8999", "host example.com", "host test", "host localhost"])
        XCTAssertEqual(configuration.deny, [.ports(25...25)])
    }

    func test_badEntriesNameTheFieldTheEntryAndTheProblem() {
        XCTAssertEqual(error(allow: ["10.0.0.0/33"]), #"invalid entry "10.0.0.0/33" in exit.allow: prefix length 33 out of range"#)
        XCTAssertEqual(error(deny: ["::/129"]), #"invalid entry "::/129" in exit.deny: prefix length 129 out of range"#)
        XCTAssertEqual(error(allow: ["10.0.0.256"]), #"invalid entry "10.0.0.256" in exit.allow: not a valid IPv4 address"#)
        XCTAssertEqual(error(allow: ["fe80::1::2/64"]), #"invalid entry "fe80::1::2/64" in exit.allow: not a valid IPv6 address"#)
        XCTAssertEqual(error(allow: ["10.0.0.0/x"]), #"invalid entry "10.0.0.0/x" in exit.allow: prefix length "x" is not a number"#)
        XCTAssertEqual(error(allow: ["10.1.2.3/8"]),
                       #"invalid entry "10.1.2.3/8" in exit.allow: address has bits set beyond the prefix (did you mean 10.0.0.0/8?)"#)
        XCTAssertEqual(error(deny: ["70000"]), #"invalid entry "70000" in exit.deny: port "70000" is not a number from 1 to 65535"#)
        XCTAssertEqual(error(deny: ["0"]), #"invalid entry "0" in exit.deny: port "0" is not a number from 1 to 65535"#)
        XCTAssertEqual(error(deny: ["900-80"]), #"invalid entry "900-80" in exit.deny: port range runs backwards (write low-high)"#)
        XCTAssertEqual(error(deny: ["1-2-3"]), #"invalid entry "1-2-3" in exit.deny: port "1-2-3" is not a number from 1 to 65535"#)
        XCTAssertEqual(error(deny: [""]), #"invalid entry "" in exit.deny: empty entry"#)
        XCTAssertTrue(error(allow: ["exa mple.com"])?.hasPrefix(#"invalid entry "exa mple.com" in exit.allow: not a CIDR"#) ?? false)
        XCTAssertTrue(error(allow: ["a..b"])?.hasPrefix(#"invalid entry "a..b" in exit.allow: not a CIDR"#) ?? false)
        XCTAssertEqual(error(mode: "allow-all"), #"invalid exit.mode "allow-all": expected "default-allow" or "default-deny""#)
    }

    func test_allowPrivateTakesNetworksAndPortsButNoHostNames() throws {
        let configuration = try ExitPolicyConfiguration.parse(allow: [], deny: [], allowPrivate: ["127.0.0.0/8", "::1", "25"],
                                                              mode: "default-allow")
        XCTAssertEqual(configuration.allowPrivate.map(describe), ["net 127.0.0.0/8", "net ::1/128", "ports 25-25"])
        XCTAssertEqual(configuration.allow, [])
        XCTAssertThrowsError(try ExitPolicyConfiguration.parse(allow: [], deny: [], allowPrivate: ["10.0.0.0/8", "localhost"],
                                                               mode: "default-allow")) { error in
            XCTAssertEqual(error as? ExitPolicyConfigurationError,
                           .invalidEntry(field: "exit.allow_private", entry: "localhost", problem: .hostSuffixCannotReopen))
            XCTAssertEqual("\(error)", "invalid entry \"localhost\" in exit.allow_private: allow_private takes address ranges and "
                           + "ports only: a host name could resolve to any private address (DNS rebinding)")
        }
        XCTAssertThrowsError(try ExitPolicyConfiguration.parse(allow: [], deny: [], allowPrivate: ["10.0.0.0/33"], mode: "default-allow")) { error in
            XCTAssertEqual(error as? ExitPolicyConfigurationError,
                           .invalidEntry(field: "exit.allow_private", entry: "10.0.0.0/33", problem: .prefixLengthOutOfRange(33)))
        }
    }

    func test_errorsAreTypedForCallers() {
        XCTAssertThrowsError(try ExitPolicyConfiguration.parse(allow: ["10.0.0.0/33"], deny: [], mode: "default-allow", section: "city.exit")) { error in
            XCTAssertEqual(error as? ExitPolicyConfigurationError,
                           .invalidEntry(field: "city.exit.allow", entry: "10.0.0.0/33", problem: .prefixLengthOutOfRange(33)))
        }
    }

    private func describe(_ entry: ExitPolicyEntry) -> String {
        switch entry {
        case .network(let n): return "net \(n)"
        case .ports(let r): return "ports \(r.lowerBound)-\(r.upperBound)"
        case .hostSuffix(let h): return "host \(h)"
        }
    }
}
