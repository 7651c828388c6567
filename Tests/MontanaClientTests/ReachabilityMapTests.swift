import MontanaClient
import MontanaTransport
import MontanaCrypto
import MontanaReachability
import MontanaWire
import XCTest

/// The reachability map's rules (PROTOCOL.md 9): one vote per source group, a quorum of 3
/// distinct groups before an entry steers anyone, and bounds on everything reporters feed it.
final class ReachabilityMapTests: XCTestCase {
    let window: UInt64 = 29_000_000
    let ir = Vantage(country: "IR", asn: 0)

    private func advert(_ target: UInt8, reachable: Bool, country: String = "IR", window: UInt64? = nil) throws -> ReachabilityAdvert {
        try ReachabilityAdvert(countryCode: country, asn: 0, target: [UInt8](repeating: target, count: 32), profile: 0,
                               reachableNum: reachable ? 1 : 0, reachableDen: 1, observedWindow: UInt32(window ?? self.window))
    }

    private func group(_ a: UInt8, _ b: UInt8) -> SourceGroup {
        SourceGroup(address16: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, 1, 2])
    }

    func test_anyNumberOfReportsFromOneSlash16IsOneVoteAndNotActionable() throws {
        let map = ReachabilityMap()
        for _ in 0..<500 { map.submit([try advert(1, reachable: false)], from: group(10, 101), window: window) }
        let entry = try XCTUnwrap(map.entries(for: ir).first)
        XCTAssertEqual(entry.sources, 1)
        XCTAssertEqual(entry.state, .unknown, "one network cannot move the map")
    }

    func test_threeDistinctSlash16sMakeAnEntryActionable() throws {
        let map = ReachabilityMap()
        map.submit([try advert(1, reachable: false)], from: group(10, 101), window: window)
        map.submit([try advert(1, reachable: false)], from: group(10, 102), window: window)
        XCTAssertEqual(map.entries(for: ir).first?.state, .unknown, "two are not a quorum")
        map.submit([try advert(1, reachable: false)], from: group(10, 103), window: window)
        XCTAssertEqual(map.entries(for: ir).first?.state, .unreachable)
        // Three networks reach it: a tie is not actionable; a fourth makes a majority.
        for b in 104...106 { map.submit([try advert(1, reachable: true)], from: group(10, UInt8(b)), window: window) }
        XCTAssertEqual(map.entries(for: ir).first?.state, .unknown, "3 against 3")
        map.submit([try advert(1, reachable: true)], from: group(10, 107), window: window)
        XCTAssertEqual(map.entries(for: ir).first?.state, .reachable, "the majority of groups decides")
        XCTAssertTrue(map.entries(for: Vantage(country: "CN", asn: 0)).isEmpty, "vantages are apart")
    }

    func test_addressesInOneSlash16AreOneGroupAndIPv6GroupsBySlash32() {
        XCTAssertEqual(group(10, 101), SourceGroup(address16: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 101, 200, 7]))
        XCTAssertNotEqual(group(10, 101), group(10, 102))
        let a = SourceGroup(address16: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 1, count: 12))
        let b = SourceGroup(address16: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 9, count: 12))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.description, "2001:db8::/32")
        XCTAssertEqual(group(10, 101).description, "10.101.0.0/16")
    }

    func test_staleAndFutureReportsAreDroppedAndVotesExpire() throws {
        let map = ReachabilityMap()
        XCTAssertEqual(map.submit([try advert(1, reachable: false, window: window - 8)], from: group(1, 1), window: window), 0)
        XCTAssertEqual(map.submit([try advert(1, reachable: false, window: window + 2)], from: group(1, 1), window: window), 0)
        XCTAssertEqual(map.submit([try advert(1, reachable: false)], from: group(1, 1), window: window), 1)
        map.expire(window: window + 8)
        XCTAssertTrue(map.entries(for: ir).isEmpty, "older than 7 windows")
    }

    func test_boundsArePushedPast() throws {
        var limits = ReachabilityMap.Limits()
        limits.maxEntriesPerVantage = 4
        limits.maxVantages = 2
        limits.maxSourcesPerEntry = 3
        limits.maxAdvertsPerSourcePerWindow = 10
        let map = ReachabilityMap(limits: limits)
        // Entries per vantage.
        for t in 0..<8 { map.submit([try advert(UInt8(t), reachable: true)], from: group(1, UInt8(t)), window: window) }
        XCTAssertEqual(map.entries(for: ir).count, 4)
        // Vantages.
        for c in ["CN", "RU", "TM"] { map.submit([try advert(1, reachable: true, country: c)], from: group(2, 1), window: window) }
        XCTAssertEqual(map.vantages.count, 2)
        // Votes per entry: the oldest makes room.
        for g in 0..<6 { map.submit([try advert(0, reachable: false)], from: group(3, UInt8(g)), window: window) }
        XCTAssertEqual(map.entries(for: ir).first { $0.target == [UInt8](repeating: 0, count: 32) }?.sources, 3)
        // Submissions per source group per window.
        let many = try (0..<50).map { _ in try advert(0, reachable: true) }
        XCTAssertEqual(map.submit(many, from: group(4, 4), window: window), 10, "a source is rate-limited")
    }

    func test_membersSyncCarriesEachVoteWithItsGroup() throws {
        let a = ReachabilityMap(), b = ReachabilityMap()
        for g in 0..<3 { a.submit([try advert(7, reachable: false)], from: group(9, UInt8(g)), window: window) }
        let exported = a.export(limit: 1024)
        XCTAssertEqual(exported.count, 3)
        let wire = ReachabilityMessage.sync(exported).encode()
        guard case .sync(let items) = try ReachabilityMessage.decode(wire, answer: false) else { return XCTFail("not a sync") }
        XCTAssertEqual(b.merge(items, window: window), 3)
        XCTAssertEqual(b.entries(for: ir).first?.state, .unreachable, "the quorum holds at the other member")
        // Merging the same again adds no votes.
        b.merge(items, window: window)
        XCTAssertEqual(b.entries(for: ir).first?.sources, 3)
    }

    func test_messagesRejectOversizedCountsAndUnknownTypes() throws {
        XCTAssertThrowsError(try ReachabilityMessage.decode([1, 65] + [UInt8](repeating: 0, count: 65 * 47), answer: false))
        XCTAssertThrowsError(try ReachabilityMessage.decode([1, 0], answer: false), "an empty submit")
        XCTAssertThrowsError(try ReachabilityMessage.decode([9], answer: false))
        XCTAssertThrowsError(try ReachabilityMessage.decode([2, 0x69, 0x72, 0, 0, 0, 0], answer: false), "lower-case country")
        let fetch = ReachabilityMessage.fetch(Vantage(country: "IR", asn: 44244))
        XCTAssertEqual(try ReachabilityMessage.decode(fetch.encode(), answer: false), fetch)
        var tooMany: [UInt8] = [3]
        tooMany.appendLE(UInt16(1025))
        XCTAssertThrowsError(try ReachabilityMessage.decode(tooMany, answer: false))
    }

    func test_untriedFrontsAreRankedByTheMapAfterOwnObservations() throws {
        func member(_ b: UInt8) throws -> AllianceMember {
            AllianceMember(nodeID: try NodeID(bytes: [UInt8](repeating: b, count: 32)), kemPublicKey: [], host: "10.0.0.\(b)", port: 1,
                           country: nil, roles: [.front])
        }
        let (own, blocked, open, unknown) = (try member(1), try member(2), try member(3), try member(4))
        var r = FrontReachability()
        r.record(own, reached: true, rttMilliseconds: 40, now: 1)
        r.map = [blocked.nodeID: .unreachable, open.nodeID: .reachable]
        XCTAssertEqual(r.ranked([unknown, blocked, open, own]).map(\.nodeID), [own, open, unknown, blocked].map(\.nodeID),
                       "own probes, then actionable reachable, then unknown, then actionable unreachable")
    }
}
