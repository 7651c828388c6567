import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import XCTest

/// A monotonic clock the test moves by hand (nanoseconds).
final class ManualClock: Sendable {
    private let value = NIOLockedValueBox<UInt64>(1_000_000_000)
    var now: UInt64 { value.withLockedValue { $0 } }
    func advance(seconds: Double) { value.withLockedValue { $0 += UInt64(seconds * 1e9) } }
    var function: @Sendable () -> UInt64 { { [self] in self.now } }
}

final class SourceAdmissionTests: XCTestCase {
    private func address(_ text: String) -> SourceAddress {
        guard let a = SourceAddress(text) else { fatalError("bad test address \(text)") }
        return a
    }

    /// Takes prefaces from `source` until admission refuses one (bounded by `limit`).
    private func prefacesAdmitted(_ admission: SourceAdmission, from source: String, limit: Int = 10_000) -> (Int, AdmissionRefusal?) {
        for n in 0..<limit {
            let ticket = admission.connect(address(source))
            defer { admission.release(ticket) }
            if let refusal = admission.admitPreface(ticket) { return (n, refusal) }
        }
        return (limit, nil)
    }

    func test_floodingNetworkSpendsOnlyItsOwnPrefaceBucket() {
        let clock = ManualClock()
        let admission = SourceAdmission(clock: clock.function)
        // Eight sources of one /24 (the e2e flood's shape): together they get the /24's burst.
        var admitted = 0
        for host in 2...9 {
            admitted += prefacesAdmitted(admission, from: "198.51.100.\(host)").0
        }
        XCTAssertEqual(admitted, 100, "the /24 gets its burst of 100, however many sources it uses")
        XCTAssertEqual(prefacesAdmitted(admission, from: "198.51.100.77").1, .networkRate)
        // Another /24 is untouched: its source gets the per-/32 burst of 40.
        let other = prefacesAdmitted(admission, from: "198.51.101.1")
        XCTAssertEqual(other.0, 40)
        XCTAssertEqual(other.1, .sourceRate, "a single /32 stops at its own burst before the /24's")
        // The flooding /24 refills at 50/s.
        clock.advance(seconds: 1)
        XCTAssertEqual(prefacesAdmitted(admission, from: "198.51.100.50").0, 40, "source burst again (the /24 has 50 back)")
        XCTAssertEqual(prefacesAdmitted(admission, from: "198.51.100.51").0, 10, "the rest of the /24's 50 tokens")
    }

    func test_ipv6SourcesAggregateBySlash64AndSlash48() {
        let admission = SourceAdmission(clock: ManualClock().function)
        // Two addresses in one /64 share the source bucket (40).
        let a = prefacesAdmitted(admission, from: "2001:db8:1:2::1").0
        let b = prefacesAdmitted(admission, from: "2001:db8:1:2:ffff:ffff:ffff:ffff").0
        XCTAssertEqual(a + b, 40, "one /64 is one source")
        // Other /64s of the same /48 share the network bucket (100 in all).
        var network = a + b
        for subnet in 3...9 { network += prefacesAdmitted(admission, from: "2001:db8:1:\(subnet)::1").0 }
        XCTAssertEqual(network, 100, "one /48 is one network")
        XCTAssertEqual(prefacesAdmitted(admission, from: "2001:db8:1:ffff::1").1, .networkRate)
        XCTAssertEqual(prefacesAdmitted(admission, from: "2001:db8:2::1").0, 40, "another /48 is untouched")
    }

    func test_ipv4MappedIPv6SourcesCountAsIPv4() {
        XCTAssertEqual(address("::ffff:192.0.2.7"), address("192.0.2.7"))
        XCTAssertTrue(address("::ffff:192.0.2.7").isIPv4)
        let admission = SourceAdmission(clock: ManualClock().function)
        let mapped = prefacesAdmitted(admission, from: "::ffff:192.0.2.7").0
        let plain = prefacesAdmitted(admission, from: "192.0.2.7").0
        XCTAssertEqual(mapped + plain, 40, "the mapped form must not double the budget")
        XCTAssertEqual(address("192.0.2.7").prefix(bits: 24), address("192.0.2.200").prefix(bits: 24))
        XCTAssertNotEqual(address("192.0.2.7").prefix(bits: 24), address("192.0.3.7").prefix(bits: 24))
    }

    func test_prefixTablesAreBoundedAndNewPrefixesShareTheOverflowWhenFull() {
        let clock = ManualClock()
        var limits = AdmissionLimits()
        limits.maxPrefixes = 4
        let admission = SourceAdmission(limits: limits, clock: clock.function)
        // Four networks each spend a token: their buckets are not full, so they cannot be evicted.
        for n in 1...4 { XCTAssertEqual(prefacesAdmitted(admission, from: "10.0.\(n).1", limit: 1).0, 1) }
        XCTAssertEqual(admission.trackedPrefixes.networks, 4)
        // Every further network lands in the one overflow entry: they share its 100.
        var overflow = 0
        for n in 5...40 { overflow += prefacesAdmitted(admission, from: "10.0.\(n).1").0 }
        // The source table is full too: the shared source overflow (burst 40) runs out first.
        XCTAssertEqual(overflow, 40, "prefixes beyond the tables share one overflow budget")
        XCTAssertLessThanOrEqual(admission.trackedPrefixes.networks, 4)
        XCTAssertLessThanOrEqual(admission.trackedPrefixes.sources, 4)
        // Once the buckets are full again (idle), a sweep evicts them and new networks get entries.
        clock.advance(seconds: 10)
        XCTAssertEqual(prefacesAdmitted(admission, from: "10.1.0.1").0, 40, "a new network has its own entry again")
        XCTAssertLessThanOrEqual(admission.trackedPrefixes.networks, 4)
    }

    func test_oneNetworkGetsAQuarterOfTheHandshakeBudgetAndTheNodeBudgetIsTheLastLine() {
        let admission = SourceAdmission(clock: ManualClock().function)
        func handshakes(_ source: String) -> (Int, AdmissionRefusal?) {
            for n in 0..<1000 {
                let ticket = admission.connect(address(source))
                defer { admission.release(ticket) }
                if let refusal = admission.admitHandshake(ticket) { return (n, refusal) }
            }
            return (1000, nil)
        }
        XCTAssertEqual(handshakes("192.0.2.1").0, 50, "25 % of 200")
        XCTAssertEqual(handshakes("192.0.2.2").1, .networkHandshakes, "the share is per /24, not per address")
        XCTAssertEqual(handshakes("198.51.100.1").0, 50, "another /24 has its own share")
        XCTAssertEqual(handshakes("203.0.113.1").0, 50)
        XCTAssertEqual(handshakes("100.64.0.1").0, 50)
        XCTAssertEqual(handshakes("100.64.1.1").1, .nodeHandshakes, "200 in all: the node budget is spent")
    }

    func test_eachMemberHasItsOwnHandshakeShareAndSkipsThePerPrefixPrefaceBuckets() {
        let frontA = address("192.0.2.10"), frontB = address("192.0.2.11")
        let admission = SourceAdmission(members: [frontA, frontB], clock: ManualClock().function)
        func count(_ source: SourceAddress, _ step: (AdmissionTicket) -> AdmissionRefusal?) -> (Int, AdmissionRefusal?) {
            for n in 0..<5000 {
                let ticket = admission.connect(source)
                defer { admission.release(ticket) }
                if let refusal = step(ticket) { return (n, refusal) }
            }
            return (5000, nil)
        }
        // A front relays many users: far beyond a /24's 100-preface burst, up to the node's 1000.
        XCTAssertEqual(count(frontA, admission.admitPreface).0, 1000)
        // Flooded front A takes its 100 handshakes (50 % of 200); front B still gets its own 100.
        let a = count(frontA, admission.admitHandshake)
        XCTAssertEqual(a.0, 100)
        XCTAssertEqual(a.1, .memberHandshakes)
        XCTAssertEqual(count(frontB, admission.admitHandshake).0, 100)
        // A non-member in the members' /24 is not exempt.
        XCTAssertEqual(count(address("192.0.2.12"), admission.admitHandshake).1, .nodeHandshakes)
    }

    func test_circuitCapsPerSourceAndPerNetworkAndDiscardersDoNotCount() throws {
        var limits = AdmissionLimits()
        limits.circuitsPerSource = 2
        limits.circuitsPerNetwork = 3
        limits.circuitsTotal = 5
        let admission = SourceAdmission(limits: limits, clock: ManualClock().function)
        let a1 = admission.connect(address("192.0.2.1")), a2 = admission.connect(address("192.0.2.1"))
        XCTAssertTrue(a1.holdsCircuit && a2.holdsCircuit)
        XCTAssertFalse(admission.connect(address("192.0.2.1")).holdsCircuit, "third circuit from one /32")
        XCTAssertTrue(admission.connect(address("192.0.2.2")).holdsCircuit)
        let over = admission.connect(address("192.0.2.3"))
        XCTAssertFalse(over.holdsCircuit, "fourth circuit from one /24")
        XCTAssertEqual(admission.admitPreface(over), .circuits, "a ticket over the cap gets no preface budget")
        XCTAssertTrue(admission.connect(address("198.51.100.1")).holdsCircuit)
        XCTAssertTrue(admission.connect(address("198.51.100.2")).holdsCircuit)
        XCTAssertFalse(admission.connect(address("203.0.113.1")).holdsCircuit, "over the node's total")
        XCTAssertEqual(admission.activeCircuits, 5)
        // A refused connection becomes a discarder and gives its circuit back.
        let channel = EmbeddedChannel()
        XCTAssertEqual(admission.discard(a1, channel: channel), .pooled)
        XCTAssertEqual(admission.activeCircuits, 4)
        XCTAssertEqual(admission.activeDiscarders, 1)
        XCTAssertTrue(admission.connect(address("203.0.113.1")).holdsCircuit, "the freed slot is usable")
        admission.release(a1)
        XCTAssertEqual(admission.activeDiscarders, 0)
        admission.release(a1)
        XCTAssertEqual(admission.activeCircuits, 5, "releasing twice gives nothing back twice")
    }

    func test_membersAreExemptFromPerPrefixCircuitCapsButHaveTheirOwn() {
        var limits = AdmissionLimits()
        limits.circuitsPerSource = 1
        limits.circuitsPerNetwork = 1
        limits.circuitsPerMember = 3
        limits.circuitsTotal = 10
        let front = address("192.0.2.10")
        let admission = SourceAdmission(limits: limits, members: [front], clock: ManualClock().function)
        XCTAssertEqual((0..<5).filter { _ in admission.connect(front).holdsCircuit }.count, 3)
        XCTAssertTrue(admission.connect(address("192.0.2.11")).holdsCircuit, "the member does not use up its /24")
    }

    func test_discardPoolIsBoundedPerNetworkAndInTotal() throws {
        var limits = AdmissionLimits()
        limits.discardPerNetwork = 2
        limits.discardTotal = 3
        let admission = SourceAdmission(limits: limits, clock: ManualClock().function)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 9)
        func discarder(_ source: String) throws -> (EmbeddedChannel, DiscardOutcome) {
            let channel = EmbeddedChannel()
            try channel.connect(to: address).wait()
            return (channel, admission.discard(admission.connect(self.address(source)), channel: channel))
        }
        let (first, o1) = try discarder("192.0.2.1")
        let (second, o2) = try discarder("192.0.2.2")
        XCTAssertEqual([o1, o2], [.pooled, .pooled])
        let (third, o3) = try discarder("192.0.2.3")
        XCTAssertEqual(o3, .pooled)
        XCTAssertFalse(first.isActive, "the network's oldest discarder is closed to make room")
        XCTAssertTrue(second.isActive && third.isActive)
        XCTAssertEqual(admission.activeDiscarders, 2)
        let (_, o4) = try discarder("198.51.100.1")
        XCTAssertEqual(o4, .pooled, "the pool has room for a third")
        // Full in total: a network with a discarder gives up its oldest; one without closes the new one.
        let (_, o5) = try discarder("203.0.113.1")
        XCTAssertEqual(o5, .closeNow)
        let (_, o6) = try discarder("198.51.100.2")
        XCTAssertEqual(o6, .pooled)
        XCTAssertEqual(admission.activeDiscarders, 3)
    }
}
