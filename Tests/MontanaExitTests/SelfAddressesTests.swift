import Foundation
import XCTest
@testable import MontanaExit

final class SelfAddressesTests: XCTestCase {
    /// A refresh interval short enough that the timer test sees several ticks in well under a second.
    private let fastInterval: TimeInterval = 0.05
    /// How long the timer test waits for a tick: 5 s is 100 intervals, so only a timer that never
    /// fires misses it.
    private let tickDeadline: TimeInterval = 5

    private func ip(_ text: String) -> IPAddress {
        guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
        return address
    }

    func test_interfaceAddressesIncludeLoopbackFromGetifaddrs() {
        let addresses = SelfAddresses.interfaceAddresses()
        XCTAssertTrue(addresses.contains(ip("127.0.0.1")), "lo is up on every Linux host: \(addresses)")
    }

    func test_updateAppliesLiteralsAtOnceAndSkipsUnboundPorts() {
        let monitor = SelfAddressMonitor(addresses: SelfAddresses())
        monitor.update(SelfAddressSources(hosts: ["203.0.113.10", "[2001:db9::10]"],
                                          endpoints: [.init(host: "127.0.0.1", port: 9090), .init(host: "198.51.100.20", port: 7443),
                                                      .init(host: "127.0.0.1", port: 0), .init(host: "0.0.0.0", port: 7000)]))
        let own = monitor.addresses
        XCTAssertEqual(own.hosts, [ip("203.0.113.10"), ip("2001:db9::10")])
        XCTAssertTrue(own.interfaces.contains(ip("127.0.0.1")), "update also reads the interfaces")
        XCTAssertEqual(own.match(ip("127.0.0.1"), port: 9090), .endpoint)
        XCTAssertEqual(own.match(ip("198.51.100.20"), port: 7443), .endpoint)
        XCTAssertNil(own.match(ip("198.51.100.20"), port: 443))
        XCTAssertEqual(own.match(ip("203.0.113.10"), port: 443), .host)
        XCTAssertEqual(own.match(ip("127.0.0.1"), port: 443), .host, "an interface address")
        XCTAssertEqual(own.match(ip("127.0.0.9"), port: 7000), .endpoint, "wildcard listener")
        XCTAssertNil(own.match(ip("127.0.0.9"), port: 0), "port 0 is not a listener")
        XCTAssertNil(own.match(ip("93.184.216.34"), port: 7000))
    }

    func test_namesAreResolvedOnRefreshAndKeptWhenALaterLookupFails() {
        let monitor = SelfAddressMonitor(addresses: SelfAddresses())
        monitor.update(SelfAddressSources(endpoints: [.init(host: "localhost", port: 9091)]))
        XCTAssertEqual(monitor.addresses.match(ip("127.0.0.1"), port: 9091), .host,
                       "lo's address on any port, but the named endpoint waits for the background refresh")
        monitor.refresh(resolveNames: true)
        XCTAssertEqual(monitor.addresses.match(ip("127.0.0.1"), port: 9091), .endpoint, "localhost resolved")
        // A name that does not resolve adds nothing but takes nothing away.
        monitor.update(SelfAddressSources(endpoints: [.init(host: "localhost", port: 9091), .init(host: "no-such-host.invalid", port: 1)]))
        monitor.refresh(resolveNames: true)
        XCTAssertEqual(monitor.addresses.match(ip("127.0.0.1"), port: 9091), .endpoint)
    }

    func test_backgroundTimerRefreshesTheInterfaceAddresses() {
        let own = SelfAddresses()
        let monitor = SelfAddressMonitor(addresses: own, interval: fastInterval)
        monitor.start()
        defer { monitor.stop() }
        let deadline = Date().addingTimeInterval(tickDeadline)
        own.setInterfaces([])
        while !own.interfaces.contains(ip("127.0.0.1")), Date() < deadline {
            Thread.sleep(forTimeInterval: fastInterval / 5)
        }
        XCTAssertTrue(own.interfaces.contains(ip("127.0.0.1")), "the timer re-read getifaddrs")
        monitor.stop()
        // After stop (and one interval for a tick already running) nothing writes any more.
        Thread.sleep(forTimeInterval: fastInterval)
        own.setInterfaces([])
        Thread.sleep(forTimeInterval: fastInterval * 4)
        XCTAssertEqual(own.interfaces, [])
    }

    func test_policyConsultsTheLiveSet() throws {
        let own = SelfAddresses()
        let policy = ExitPolicy(configuration: ExitPolicyConfiguration(), selfAddresses: own)
        let host = ip("198.51.100.10")
        XCTAssertEqual(policy.check(host: nil, addresses: [host], port: 80), .allow)
        own.setInterfaces([host])
        XCTAssertEqual(policy.check(host: nil, addresses: [host], port: 80), .deny(reason: .selfAddress))
        own.setInterfaces([])
        XCTAssertEqual(policy.check(host: nil, addresses: [host], port: 80), .allow)
    }
}
