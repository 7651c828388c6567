import XCTest
@testable import MontanaExit

final class ExitPolicyTests: XCTestCase {
    private let publicV4 = "93.184.216.34"
    private let publicV6 = "2606:2800:220:1:248:1893:25c8:1946"

    private func address(_ text: String) -> IPAddress {
        guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
        return address
    }

    private func policy(mode: String = "default-allow", allow: [String] = [], deny: [String] = []) throws -> ExitPolicy {
        ExitPolicy(configuration: try ExitPolicyConfiguration.parse(allow: allow, deny: deny, mode: mode))
    }

    private func decision(_ policy: ExitPolicy, _ addresses: [String], host: String? = nil, port: UInt16 = 443) -> ExitPolicyDecision {
        policy.check(host: host, addresses: addresses.map(address), port: port)
    }

    func test_publicAddressesAreAllowedByDefault() throws {
        let p = try policy()
        XCTAssertEqual(decision(p, [publicV4]), .allow)
        XCTAssertEqual(decision(p, [publicV6]), .allow)
        XCTAssertEqual(decision(p, ["::ffff:" + publicV4]), .allow)
        XCTAssertEqual(decision(p, ["64:ff9b::" + publicV4]), .allow, "NAT64 of a public IPv4 address")
        XCTAssertEqual(decision(p, ["172.32.0.1", "100.128.0.1", "223.255.255.255", "9.255.255.255", "11.0.0.0"]), .allow)
    }

    func test_everyBuiltinIPv4RangeIsDeniedAlsoWhenMappedOrBehindNAT64() throws {
        let p = try policy()
        let denied = ["0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.255",
                      "127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1", "172.16.0.1", "172.31.255.255",
                      "192.168.1.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255"]
        for v4 in denied {
            XCTAssertEqual(decision(p, [v4]), .deny(reason: .builtinRange), v4)
            XCTAssertEqual(decision(p, ["::ffff:" + v4]), .deny(reason: .builtinRange), "mapped \(v4)")
            XCTAssertEqual(decision(p, ["64:ff9b::" + v4]), .deny(reason: .builtinRange), "NAT64 \(v4)")
        }
    }

    func test_everyBuiltinIPv6RangeIsDenied() throws {
        let p = try policy()
        let denied = ["::", "::1", "::10.0.0.1", "::8.8.8.8", "64:ff9b:1::1", "64:ff9b:1:ffff::8.8.8.8",
                      "fc00::1", "fdff:ffff::1", "fe80::1", "febf::1", "fec0::1", "ff02::1", "ff0e::fb"]
        for v6 in denied {
            XCTAssertEqual(decision(p, [v6]), .deny(reason: .builtinRange), v6)
        }
        XCTAssertEqual(decision(p, ["64:ff9b:2::1", "fe00::1", "2001:db8::1"]), .allow)
    }

    func test_smtpPortIsDenied() throws {
        let p = try policy()
        XCTAssertEqual(decision(p, [publicV4], port: 25), .deny(reason: .port))
        XCTAssertEqual(decision(p, [publicV4], port: 587), .allow)
    }

    func test_nameWithOnePublicAndOnePrivateAddressIsDenied() throws {
        let p = try policy()
        XCTAssertEqual(decision(p, [publicV4, "10.0.0.5"], host: "rebind.example"), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["192.168.0.1", publicV6], host: "rebind.example"), .deny(reason: .builtinRange))
    }

    func test_nameWithoutAddressesIsDenied() throws {
        XCTAssertEqual(decision(try policy(), [], host: "nxdomain.example"), .deny(reason: .noAddress))
    }

    func test_operatorAllowOfLoopbackRangeRepermitsLoopbackLikeTheDemo() throws {
        let p = try policy(allow: ["127.0.0.0/8"])
        XCTAssertEqual(decision(p, ["127.0.0.1"], host: "localhost", port: 8080), .allow)
        XCTAssertEqual(decision(p, ["::ffff:127.0.0.1"], port: 8080), .allow, "the mapped form is the same host")
        XCTAssertEqual(decision(p, ["::1"]), .deny(reason: .builtinRange), "IPv6 loopback was not named")
        XCTAssertEqual(decision(p, ["10.0.0.1"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["127.0.0.1"], port: 25), .deny(reason: .port), "an address allow does not re-permit a port")
    }

    func test_operatorPortAllowRepermitsSMTP() throws {
        let p = try policy(allow: ["25"])
        XCTAssertEqual(decision(p, [publicV4], port: 25), .allow)
        XCTAssertEqual(decision(p, ["10.0.0.1"], port: 25), .deny(reason: .builtinRange))
    }

    func test_hostSuffixAllowDoesNotRepermitBuiltinAddresses() throws {
        let p = try policy(mode: "default-deny", allow: [".example.com"])
        XCTAssertEqual(decision(p, ["127.0.0.1"], host: "evil.example.com"), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, [publicV4, "169.254.169.254"], host: "www.example.com"), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, [publicV4], host: "www.example.com"), .allow)
    }

    func test_defaultDenyModeAllowsOnlyWhatIsListed() throws {
        let p = try policy(mode: "default-deny", allow: ["example.com", "198.51.100.0/24", "8443"])
        XCTAssertEqual(decision(p, [publicV4], host: "EXAMPLE.com."), .allow)
        XCTAssertEqual(decision(p, [publicV4], host: "a.b.example.com"), .allow)
        XCTAssertEqual(decision(p, [publicV4], host: "notexample.com"), .deny(reason: .defaultDeny))
        XCTAssertEqual(decision(p, [publicV4]), .deny(reason: .defaultDeny))
        XCTAssertEqual(decision(p, ["198.51.100.7"]), .allow)
        XCTAssertEqual(decision(p, ["198.51.100.7", publicV4], host: "mixed.test"), .deny(reason: .defaultDeny),
                       "every address of a name must be allowed")
        XCTAssertEqual(decision(p, [publicV6], port: 8443), .allow)
    }

    func test_operatorDenyBeatsOperatorAllowAndCoversMappedForms() throws {
        let p = try policy(allow: ["203.0.113.0/24", "tracker.example"], deny: ["203.0.113.66", "ads.tracker.example", "6881-6889"])
        XCTAssertEqual(decision(p, ["203.0.113.5"]), .allow)
        XCTAssertEqual(decision(p, ["203.0.113.66"]), .deny(reason: .operatorDeny))
        XCTAssertEqual(decision(p, ["::ffff:203.0.113.66"]), .deny(reason: .operatorDeny))
        XCTAssertEqual(decision(p, ["64:ff9b::203.0.113.66"]), .deny(reason: .operatorDeny))
        XCTAssertEqual(decision(p, [publicV4], host: "x.ads.tracker.example"), .deny(reason: .operatorDeny))
        XCTAssertEqual(decision(p, [publicV4], host: "tracker.example"), .allow)
        XCTAssertEqual(decision(p, [publicV4], port: 6885), .deny(reason: .operatorDeny))
        XCTAssertEqual(decision(try policy(allow: ["127.0.0.0/8"], deny: ["127.0.0.1"]), ["127.0.0.1"]), .deny(reason: .operatorDeny))
    }

    func test_mappedIPv6EntryIsTreatedAsItsIPv4Block() throws {
        let p = try policy(allow: ["::ffff:127.0.0.0/104"])
        XCTAssertEqual(decision(p, ["127.0.0.1"]), .allow)
        XCTAssertEqual(decision(p, ["::ffff:127.0.0.1"]), .allow)
    }

    func test_builtinDenialsCanBeSwitchedOff() {
        let p = ExitPolicy(configuration: ExitPolicyConfiguration(builtinDenials: false))
        XCTAssertEqual(decision(p, ["10.0.0.1"], port: 25), .allow)
    }

    func test_rawAddressBytesOfTheWrongLengthAreRefused() throws {
        let p = try policy()
        XCTAssertEqual(p.check(host: "x.test", addressBytes: [[93, 184, 216, 34]], port: 80), .allow)
        XCTAssertEqual(p.check(host: "x.test", addressBytes: [[93, 184, 216, 34], [1, 2, 3]], port: 80), .deny(reason: .builtinRange))
    }

    func test_denyReasonsAreMetricLabels() {
        XCTAssertEqual(ExitPolicyDenyReason.allCases.map(\.rawValue),
                       ["builtin_range", "port", "operator_deny", "default_deny", "no_address"])
    }
}
