import MontanaClient
import MontanaCrypto
import MontanaTransport
import MontanaWire
import XCTest

/// What a client reports to the map (PROTOCOL.md 9): the outcomes of its recent attempts, by
/// reporting window, never its lifetime totals nor what it restored from its cache.
final class ClientReachabilityReportsTests: XCTestCase {
    let now: UInt64 = 29_000_000

    private func front(_ b: UInt8) throws -> AllianceMember {
        AllianceMember(nodeID: try NodeID(bytes: [UInt8](repeating: b, count: 32)), kemPublicKey: [], host: "10.0.0.\(b)", port: 1,
                       country: nil, roles: [.front])
    }

    private func reports(_ r: FrontReachability, limit: Int = 64) -> [UInt8: (num: UInt16, den: UInt16, window: UInt32)] {
        Dictionary(uniqueKeysWithValues: r.reports(country: "IR", asn: 58224, window: now, limit: limit).map {
            ($0.target[0], ($0.reachableNum, $0.reachableDen, $0.observedWindow))
        })
    }

    func test_aFrontThatWorkedForLongAndIsBlockedNowIsReportedUnreachable() throws {
        let f = try front(1)
        var r = FrontReachability()
        // 100 successes long ago (beyond the 7 windows an advert lives), 5 failures lately.
        for i in 0..<100 { r.record(f, reached: true, now: UInt64(i), window: now - 50) }
        for i in 0..<5 { r.record(f, reached: false, now: UInt64(200 + i), window: now - 1) }
        XCTAssertEqual(r.observation(f.nodeID)?.successes, 100, "the lifetime record is kept for ranking")
        let got = try XCTUnwrap(reports(r)[1])
        XCTAssertEqual(got.num, 0, "only recent attempts are reported")
        XCTAssertEqual(got.den, 5)
        XCTAssertEqual(got.window, UInt32(now - 1), "stamped with the newest window that saw an attempt")
    }

    func test_recentWindowsAddUpAndOldOnesAreDropped() throws {
        let (a, b, c) = (try front(1), try front(2), try front(3))
        var r = FrontReachability()
        r.record(a, reached: true, now: 1, window: now - 6)
        r.record(a, reached: false, now: 2, window: now - 3)
        r.record(a, reached: true, now: 3, window: now)
        r.record(b, reached: true, now: 4, window: now - 8)   // too old to be fresh at a front
        r.record(c, reached: false, now: 5, window: now)
        let got = reports(r)
        XCTAssertEqual(got[1]?.num, 2)
        XCTAssertEqual(got[1]?.den, 3)
        XCTAssertNil(got[2], "a front not attempted in the last 7 windows is not reported")
        XCTAssertEqual(got[3]?.num, 0)
        XCTAssertEqual(got[3]?.den, 1)
        XCTAssertLessThanOrEqual(try XCTUnwrap(r.observation(a.nodeID)).recent.count, FrontReachability.reportWindows)
        XCTAssertEqual(r.reports(country: "IR", asn: 58224, window: now, limit: 64).first?.countryCode, "IR")
        XCTAssertEqual(r.reports(country: "IR", asn: 58224, window: now, limit: 64).first?.asn, 58224)
    }

    func test_perFrontWindowsAreBoundedAndCountsSaturate() throws {
        let f = try front(1)
        var r = FrontReachability()
        // 40 windows in a row: only the last 7 are kept.
        for w in 0..<40 { r.record(f, reached: true, now: UInt64(w), window: now - 39 + UInt64(w)) }
        XCTAssertEqual(r.observation(f.nodeID)?.recent.count, FrontReachability.reportWindows)
        // More than 65535 outcomes in the reported windows: the ratio stays within u16.
        var many = FrontReachability()
        for i in 0..<70_000 { many.record(f, reached: i % 4 != 0, now: UInt64(i), window: now - UInt64(i % 2)) }
        let got = try XCTUnwrap(reports(many)[1])
        XCTAssertEqual(got.den, UInt16.max)
        XCTAssertEqual(Double(got.num) / Double(got.den), 0.75, accuracy: 0.001)
        // A clock that steps back counts in the newest window kept, not in a new old one.
        var back = FrontReachability()
        back.record(f, reached: true, now: 1, window: now)
        back.record(f, reached: false, now: 2, window: now - 3)
        XCTAssertEqual(back.observation(f.nodeID)?.recent, [FrontReachability.WindowOutcomes(window: now, successes: 1, failures: 1)])
    }

    func test_restoredObservationsAreNotReportedAndTheLimitHolds() throws {
        var r = FrontReachability()
        r.observedSourceGroup("10.101.0.0/16")
        var saved = FrontReachability.Observation(node: try front(9).nodeID, label: "f9", host: "10.0.0.9:1")
        saved.successes = 40
        saved.lastReached = true
        r.restore([saved], sourceGroup: "10.101.0.0/16")
        XCTAssertEqual(r.observation(saved.node)?.state, .reachable, "restored for ranking")
        XCTAssertTrue(reports(r).isEmpty, "an earlier run's outcomes are not reported as today's")
        for b in 1...100 { r.record(try front(UInt8(b)), reached: true, now: UInt64(b), window: now) }
        let limited = r.reports(country: "IR", asn: 0, window: now, limit: 64)
        XCTAssertEqual(limited.count, 64)
        XCTAssertEqual(limited.first?.target[0], 100, "the fronts attempted most recently first")
    }
}
