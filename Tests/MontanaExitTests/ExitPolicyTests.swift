import XCTest
@testable import MontanaExit

final class ExitPolicyTests: XCTestCase {
    private let publicV4 = "93.184.216.34"
    private let publicV6 = "2606:2800:220:1:248:1893:25c8:1946"

    private func address(_ text: String) -> IPAddress {
        guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
        return address
    }

    private func policy(mode: String = "default-allow", allow: [String] = [], deny: [String] = [],
                        allowPrivate: [String] = [], selfAddresses: SelfAddresses? = nil) throws -> ExitPolicy {
        ExitPolicy(configuration: try ExitPolicyConfiguration.parse(allow: allow, deny: deny, allowPrivate: allowPrivate, mode: mode),
                   selfAddresses: selfAddresses)
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
        XCTAssertEqual(decision(p, ["64:ff9b:2::1", "fe00::1", "2001:db9::1", "100::1:0:0:0:0"]), .allow)
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

    func test_allowPrivateLoopbackRangeRepermitsLoopbackLikeTheDemo() throws {
        let p = try policy(allowPrivate: ["127.0.0.0/8"])
        XCTAssertEqual(decision(p, ["127.0.0.1"], host: "localhost", port: 8080), .allow)
        XCTAssertEqual(decision(p, ["::ffff:127.0.0.1"], port: 8080), .allow, "the mapped form is the same host")
        XCTAssertEqual(decision(p, ["::1"]), .deny(reason: .builtinRange), "IPv6 loopback was not named")
        XCTAssertEqual(decision(p, ["10.0.0.1"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["127.0.0.1"], port: 25), .deny(reason: .port), "an address allow does not re-permit a port")
    }

    func test_allowPrivatePortRepermitsSMTP() throws {
        let p = try policy(allowPrivate: ["25"])
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
        let p = try policy(allowPrivate: ["::ffff:127.0.0.0/104"])
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
                       ["builtin_range", "port", "operator_deny", "default_deny", "no_address", "self"])
    }

    // MARK: special-purpose ranges and IPv6 forms that embed IPv4

    func test_specialPurposeAndDocumentationRangesAreDenied() throws {
        let p = try policy()
        for denied in ["192.0.0.1", "192.0.0.170", "192.0.0.255", "198.18.0.1", "198.19.255.255",
                       "100::1", "100::ffff:ffff:ffff:ffff", "2001:db8::1", "2001:db8:ffff:ffff::1"] {
            XCTAssertEqual(decision(p, [denied]), .deny(reason: .builtinRange), denied)
        }
        for neighbour in ["191.255.255.255", "192.0.1.1", "198.17.255.255", "198.20.0.0", "100:0:0:1::1", "2001:db9::1", "2001:db7::1"] {
            XCTAssertEqual(decision(p, [neighbour]), .allow, neighbour)
        }
    }

    func test_6to4IsDeniedWhenItsEmbeddedIPv4AddressIsDenied() throws {
        let p = try policy()
        XCTAssertEqual(decision(p, ["2002:7f00:1::1"]), .deny(reason: .builtinRange), "6to4 of 127.0.0.1")
        XCTAssertEqual(decision(p, ["2002:a9fe:a9fe::"]), .deny(reason: .builtinRange), "6to4 of 169.254.169.254")
        XCTAssertEqual(decision(p, ["2002:a00:1:ffff::1"]), .deny(reason: .builtinRange), "6to4 of 10.0.0.1")
        XCTAssertEqual(decision(p, ["2002:c612:1::"]), .deny(reason: .builtinRange), "6to4 of 198.18.0.1")
        XCTAssertEqual(decision(p, ["2002:5db8:d822::1"]), .allow, "6to4 of the public 93.184.216.34")
        let operatorDeny = try policy(deny: ["93.184.216.0/24"])
        XCTAssertEqual(decision(operatorDeny, ["2002:5db8:d822::1"]), .deny(reason: .operatorDeny), "operator IPv4 rules apply too")
    }

    func test_teredoIsDeniedWhenItsClientOrServerIPv4AddressIsDenied() throws {
        let p = try policy()
        // 2001:0:<server>:<flags>:<port ^ ffff>:<client ^ ffffffff>; 93.184.216.34 = 5db8:d822, ~ = a247:27dd.
        XCTAssertEqual(decision(p, ["2001:0:5db8:d822:8000:f227:f5ff:fffe"]), .deny(reason: .builtinRange), "client 10.0.0.1")
        XCTAssertEqual(decision(p, ["2001:0:5db8:d822::80ff:fffe"]), .deny(reason: .builtinRange), "client 127.0.0.1")
        XCTAssertEqual(decision(p, ["2001:0:7f00:1::a247:27dd"]), .deny(reason: .builtinRange), "server 127.0.0.1")
        XCTAssertEqual(decision(p, ["2001:0:a9fe:a9fe::a247:27dd"]), .deny(reason: .builtinRange), "server 169.254.169.254")
        XCTAssertEqual(decision(p, ["2001:0:5db8:d822::a247:27dd"]), .allow, "client and server public")
        let operatorDeny = try policy(deny: ["93.184.216.34"])
        XCTAssertEqual(decision(operatorDeny, ["2001:0:4136:e378:8000:63bf:a247:27dd"]), .deny(reason: .operatorDeny))
    }

    func test_siitTranslatedAddressIsDeniedWhenItsEmbeddedIPv4AddressIsDenied() throws {
        let p = try policy()
        XCTAssertEqual(decision(p, ["::ffff:0:127.0.0.1"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["::ffff:0:169.254.169.254"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["::ffff:0:192.168.0.1"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["::ffff:0:" + publicV4]), .allow)
        XCTAssertEqual(decision(p, ["::ffff:0:" + publicV4], port: 25), .deny(reason: .port))
    }

    // MARK: a broad allow never re-opens built-in denials; allow_private does

    func test_broadAllowDoesNotReopenLoopbackMetadataPrivateRangesOrSMTP() throws {
        let broad: [[String]] = [["0.0.0.0/0"], ["::/0"], ["::ffff:0:0/96"], ["1-65535"], ["0.0.0.0/0", "::/0", "1-65535", "localhost"]]
        for allow in broad {
            for mode in ["default-allow", "default-deny"] {
                let p = try policy(mode: mode, allow: allow)
                for denied in ["127.0.0.1", "169.254.169.254", "10.0.0.1", "192.168.1.1", "172.16.0.1", "::1", "::ffff:127.0.0.1",
                               "64:ff9b::169.254.169.254", "2002:7f00:1::", "fd00::1"] {
                    XCTAssertEqual(decision(p, [denied], host: "localhost", port: 8080), .deny(reason: .builtinRange), "\(allow) \(mode) \(denied)")
                }
                XCTAssertEqual(decision(p, [publicV4], port: 25), .deny(reason: .port), "\(allow) \(mode) port 25")
            }
        }
        XCTAssertEqual(decision(try policy(mode: "default-deny", allow: ["0.0.0.0/0"]), [publicV4]), .allow, "the allow still works")
    }

    func test_allowPrivateReopensOnlyTheRangesAndPortsItNames() throws {
        let p = try policy(allowPrivate: ["10.1.0.0/16", "fd00::/8"])
        XCTAssertEqual(decision(p, ["10.1.2.3"]), .allow)
        XCTAssertEqual(decision(p, ["::ffff:10.1.2.3"]), .allow)
        XCTAssertEqual(decision(p, ["fd00::1"]), .allow)
        XCTAssertEqual(decision(p, ["10.2.0.1"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["127.0.0.1"]), .deny(reason: .builtinRange))
        XCTAssertEqual(decision(p, ["10.1.2.3"], port: 25), .deny(reason: .port), "a network does not re-open a port")
        let smtp = try policy(allowPrivate: ["25"])
        XCTAssertEqual(decision(smtp, [publicV4], port: 25), .allow)
        XCTAssertEqual(decision(smtp, ["10.0.0.1"], port: 25), .deny(reason: .builtinRange), "a port does not re-open a network")
    }

    func test_allowPrivateOnlyLiftsDenialsAndDefaultDenyStillNeedsAnAllow() throws {
        let onlyPrivate = try policy(mode: "default-deny", allowPrivate: ["10.0.0.0/8"])
        XCTAssertEqual(decision(onlyPrivate, ["10.0.0.1"]), .deny(reason: .defaultDeny))
        let both = try policy(mode: "default-deny", allow: ["10.0.0.0/8"], allowPrivate: ["10.0.0.0/8"])
        XCTAssertEqual(decision(both, ["10.0.0.1"]), .allow)
        XCTAssertEqual(decision(both, [publicV4]), .deny(reason: .defaultDeny))
    }

    func test_operatorDenyBeatsAllowPrivate() throws {
        let p = try policy(deny: ["127.0.0.1"], allowPrivate: ["127.0.0.0/8"])
        XCTAssertEqual(decision(p, ["127.0.0.1"]), .deny(reason: .operatorDeny))
        XCTAssertEqual(decision(p, ["127.0.0.2"]), .allow)
    }

    // MARK: the exit's own addresses

    private func selfAddresses(interfaces: [String] = [], hosts: [String] = [], endpoints: [(String, UInt16)] = []) -> SelfAddresses {
        let set = SelfAddresses()
        set.setInterfaces(Set(interfaces.map(address)))
        set.setConfigured(hosts: Set(hosts.map(address)),
                          endpoints: Set(endpoints.map { SelfAddresses.Endpoint(address: address($0.0), port: $0.1) }))
        return set
    }

    func test_interfaceAndPublicAddressesAreDeniedAsSelfOnEveryPort() throws {
        let own = selfAddresses(interfaces: ["127.0.0.1", "::1", "198.51.100.10", "2001:db9::10"], hosts: ["203.0.113.10"])
        let p = try policy(selfAddresses: own)
        for port: UInt16 in [22, 80, 443, 8080] {
            XCTAssertEqual(decision(p, ["198.51.100.10"], port: port), .deny(reason: .selfAddress))
            XCTAssertEqual(decision(p, ["2001:db9::10"], port: port), .deny(reason: .selfAddress))
            XCTAssertEqual(decision(p, ["203.0.113.10"], port: port), .deny(reason: .selfAddress))
        }
        XCTAssertEqual(decision(p, ["::ffff:198.51.100.10"]), .deny(reason: .selfAddress), "the mapped form is the same host")
        XCTAssertEqual(decision(p, ["64:ff9b::198.51.100.10"]), .deny(reason: .selfAddress), "NAT64 of the host")
        XCTAssertEqual(decision(p, ["2002:c633:640a::"]), .deny(reason: .selfAddress), "6to4 of the host")
        XCTAssertEqual(decision(p, [publicV4, "198.51.100.10"], host: "rebind.example"), .deny(reason: .selfAddress),
                       "a name resolving to the exit itself")
        XCTAssertEqual(decision(p, ["198.51.100.11"]), .allow)
        XCTAssertEqual(decision(p, ["127.0.0.1"]), .deny(reason: .selfAddress), "lo's address is self before it is loopback")
        XCTAssertEqual(decision(try policy(allow: ["0.0.0.0/0", "::/0", "1-65535"], selfAddresses: own), ["198.51.100.10"]),
                       .deny(reason: .selfAddress), "a broad allow does not re-open it")
    }

    func test_allowPrivateReopensAnInterfaceAddressButNotTheAdminOrTransitEndpoints() throws {
        // The demo: everything on 127.0.0.1, loopback re-opened for the local site.
        let own = selfAddresses(interfaces: ["127.0.0.1", "::1"], hosts: ["127.0.0.1"],
                                endpoints: [("127.0.0.1", 9090), ("127.0.0.1", 7443), ("127.0.0.1", 7444)])
        let p = try policy(allowPrivate: ["127.0.0.0/8", "::1"], selfAddresses: own)
        XCTAssertEqual(decision(p, ["127.0.0.1"], host: "localhost", port: 8000), .allow, "the demo site")
        XCTAssertEqual(decision(p, ["::1"], port: 8000), .allow)
        for port: UInt16 in [9090, 7443, 7444] {
            XCTAssertEqual(decision(p, ["127.0.0.1"], port: port), .deny(reason: .selfAddress), "port \(port)")
            XCTAssertEqual(decision(p, ["::ffff:127.0.0.1"], port: port), .deny(reason: .selfAddress), "mapped, port \(port)")
            XCTAssertEqual(decision(p, ["127.0.0.1"], host: "localhost", port: port), .deny(reason: .selfAddress))
        }
        XCTAssertEqual(decision(p, ["127.0.0.2"], port: 9090), .allow, "another loopback address is not the listener")
        // Naming the port as well is the explicit re-opening.
        let reopened = try policy(allowPrivate: ["127.0.0.0/8", "9090"], selfAddresses: own)
        XCTAssertEqual(decision(reopened, ["127.0.0.1"], port: 9090), .allow)
        XCTAssertEqual(decision(reopened, ["127.0.0.1"], port: 7443), .deny(reason: .selfAddress))
    }

    func test_memberTransitEndpointIsDeniedEvenThoughItsHostIsAllowed() throws {
        let own = selfAddresses(endpoints: [("198.51.100.20", 7443), ("2001:db9::20", 7443)])
        let p = try policy(mode: "default-deny", allow: ["198.51.100.0/24", "2001:db9::/32"], selfAddresses: own)
        XCTAssertEqual(decision(p, ["198.51.100.20"], port: 443), .allow, "the member's web site is fine")
        XCTAssertEqual(decision(p, ["198.51.100.20"], port: 7443), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["::ffff:198.51.100.20"], port: 7443), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["2001:db9::20"], port: 7443), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["198.51.100.21"], port: 7443), .allow)
        XCTAssertEqual(decision(try policy(allowPrivate: ["198.51.100.0/24"], selfAddresses: own), ["198.51.100.20"], port: 7443),
                       .deny(reason: .selfAddress), "a network alone does not re-open an endpoint")
    }

    func test_wildcardListenerPortIsDeniedOnEveryLocalAddress() throws {
        let own = selfAddresses(interfaces: ["127.0.0.1", "198.51.100.10"], endpoints: [("0.0.0.0", 9090), ("::", 7443)])
        let p = try policy(allowPrivate: ["127.0.0.0/8", "0.0.0.0/8", "::/96"], selfAddresses: own)
        XCTAssertEqual(decision(p, ["127.0.0.5"], port: 9090), .deny(reason: .selfAddress), "all of 127/8 reaches a wildcard bind")
        XCTAssertEqual(decision(p, ["127.0.0.5"], port: 7443), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["::1"], port: 7443), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["0.0.0.0"], port: 9090), .deny(reason: .selfAddress), "0.0.0.0 connects to this machine")
        XCTAssertEqual(decision(p, ["::"], port: 9090), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["127.0.0.5"], port: 8000), .allow)
        XCTAssertEqual(decision(p, [publicV4], port: 9090), .allow, "someone else's port 9090")
    }

    func test_selfDenialHoldsWithBuiltinDenialsSwitchedOff() {
        let own = selfAddresses(interfaces: ["10.0.0.5"], endpoints: [("10.0.0.5", 9090)])
        let p = ExitPolicy(configuration: ExitPolicyConfiguration(builtinDenials: false), selfAddresses: own)
        XCTAssertEqual(decision(p, ["10.0.0.5"], port: 80), .deny(reason: .selfAddress))
        XCTAssertEqual(decision(p, ["10.0.0.6"], port: 80), .allow)
    }
}
