import Foundation
import MontanaClient
import MontanaCrypto
@testable import MontanaNode
import XCTest

/// The client's observations on disk (real SQLite): what worked from a network comes back after a
/// restart, bounded, and the network itself is not written in clear.
final class ReachabilityCacheTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "reach-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }

    private func observation(_ b: UInt8, reached: Bool) throws -> FrontReachability.Observation {
        var o = FrontReachability.Observation(node: try NodeID(bytes: [UInt8](repeating: b, count: 32)), label: "front \(b)", host: "10.11.0.\(b):443")
        o.successes = reached ? 3 : 0
        o.failures = reached ? 0 : 2
        o.lastReached = reached
        o.rttMilliseconds = reached ? 42 : nil
        return o
    }

    func test_observationsComeBackForTheSameNetworkOnly() throws {
        let path = directory + "/client-reachability.sqlite"
        let cache = try ReachabilityCache(path: path)
        cache.save(sourceGroup: "10.101.0.0/16", [try observation(1, reached: true), try observation(2, reached: false)])
        cache.flush()
        let reopened = try ReachabilityCache(path: path)
        let back = reopened.load(sourceGroup: "10.101.0.0/16")
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back.first { $0.label == "front 1" }?.state, .reachable)
        XCTAssertEqual(back.first { $0.label == "front 1" }?.rttMilliseconds, 42)
        XCTAssertEqual(back.first { $0.label == "front 2" }?.state, .unreachable)
        XCTAssertTrue(reopened.load(sourceGroup: "10.102.0.0/16").isEmpty, "another network starts afresh")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertNil(bytes.range(of: Data("10.101".utf8)), "the client's own /16 is not on disk in clear")

        var r = FrontReachability()
        r.observedSourceGroup("10.101.0.0/16")
        r.restore(back, sourceGroup: "10.101.0.0/16")
        XCTAssertEqual(r.all.count, 2, "restored into the live record")
        var other = FrontReachability()
        other.observedSourceGroup("10.102.0.0/16")
        other.restore(back, sourceGroup: "10.101.0.0/16")
        XCTAssertTrue(other.all.isEmpty, "never into another network's record")
    }

    func test_atMostEightNetworksAreKept() throws {
        let cache = try ReachabilityCache(path: directory + "/c.sqlite")
        for n in 0..<10 { cache.save(sourceGroup: "10.\(n).0.0/16", [try observation(UInt8(n + 1), reached: true)]) }
        cache.flush()
        XCTAssertTrue(cache.load(sourceGroup: "10.0.0.0/16").isEmpty, "the oldest network was dropped")
        XCTAssertTrue(cache.load(sourceGroup: "10.1.0.0/16").isEmpty)
        XCTAssertEqual(cache.load(sourceGroup: "10.9.0.0/16").count, 1)
        XCTAssertEqual(cache.load(sourceGroup: "10.2.0.0/16").count, 1)
    }
}
