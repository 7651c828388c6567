import MontanaCrypto
import MontanaTransport
import MontanaWire
import XCTest
@testable import MontanaClient

/// Issue 8 item 1-2: the client's own observations of fronts rank them, are bounded, and a new
/// vantage starts afresh; the observed-address TLV gives the vantage's source group.
final class FrontReachabilityTests: XCTestCase {
    private static func front(_ n: Int) throws -> AllianceMember {
        var seed = [UInt8](repeating: 0, count: 32)
        seed[0] = UInt8(n & 0xff)
        seed[1] = UInt8(n >> 8)
        let id = try IdentityKey(seed: seed)
        return AllianceMember(nodeID: id.nodeID, kemPublicKey: [], host: "10.0.\(n & 0xff).1", port: 7443, country: nil,
                              roles: [.front], name: "f\(n)")
    }

    func test_reachableFastestFirstThenUnknownThenFailingLast() throws {
        let f = try (0..<5).map(Self.front)
        var r = FrontReachability()
        r.record(f[0], reached: false, error: "timed out", now: 1)
        r.record(f[1], reached: true, rttMilliseconds: 80, now: 2)
        r.record(f[2], reached: true, rttMilliseconds: 20, now: 3)
        r.record(f[4], reached: false, error: "refused", now: 4)
        r.record(f[4], reached: false, error: "refused", now: 5)
        XCTAssertEqual(r.ranked(f).map(\.label), ["f2", "f1", "f3", "f0", "f4"])
        XCTAssertEqual(r.observation(f[0].nodeID)?.state, .unreachable)
        XCTAssertEqual(r.observation(f[0].nodeID)?.lastError, "timed out")
        // A front that comes back is reachable again at once, its error cleared.
        r.record(f[0], reached: true, rttMilliseconds: 5, now: 6)
        XCTAssertEqual(r.ranked(f).first?.label, "f0")
        XCTAssertNil(r.observation(f[0].nodeID)?.lastError)
    }

    func test_atMost256FrontsTheLongestUntriedGoesFirst() throws {
        var r = FrontReachability()
        let fronts = try (0..<(FrontReachability.maxFronts + 10)).map(Self.front)
        for (i, f) in fronts.enumerated() { r.record(f, reached: i % 2 == 0, now: UInt64(i + 1)) }
        XCTAssertEqual(r.all.count, FrontReachability.maxFronts)
        XCTAssertNil(r.observation(fronts[0].nodeID), "the oldest attempt was evicted")
        XCTAssertNotNil(r.observation(fronts.last!.nodeID))
    }

    func test_aNewVantageForgetsWhatWasSeenFromTheOldOne() throws {
        let f = try Self.front(1)
        var r = FrontReachability()
        r.observedSourceGroup("10.101.0.0/16")
        r.record(f, reached: false, error: "dropped", now: 1)
        r.observedSourceGroup("10.101.0.0/16")
        XCTAssertEqual(r.all.count, 1, "the same vantage keeps its observations")
        r.observedSourceGroup("10.102.0.0/16")
        XCTAssertEqual(r.sourceGroup, "10.102.0.0/16")
        XCTAssertTrue(r.all.isEmpty)
    }

    func test_observedAddressTLVGivesTheSourceGroup() {
        var v4 = [UInt8](repeating: 0, count: 18)
        v4[10] = 0xff; v4[11] = 0xff; v4[12] = 10; v4[13] = 101; v4[14] = 0; v4[15] = 2; v4[16] = 0x39; v4[17] = 0x30
        let payload = TLV.encode([TLV(type: PayloadTLV.features, value: [0, 0, 0, 0]), TLV(type: PayloadTLV.observedAddress, value: v4)])
        XCTAssertEqual(ObservedAddress.sourceGroup(inPayload: payload), "10.101.0.0/16")
        var v6 = [UInt8](repeating: 0, count: 18)
        v6[0] = 0x20; v6[1] = 0x01; v6[2] = 0x0d; v6[3] = 0xb8
        XCTAssertEqual(ObservedAddress.sourceGroup(inPayload: TLV.encode([TLV(type: PayloadTLV.observedAddress, value: v6)])), "2001:0db8::/32")
        XCTAssertNil(ObservedAddress.sourceGroup(inPayload: TLV.encode([TLV(type: PayloadTLV.observedAddress, value: [1, 2, 3])])),
                     "a malformed value is ignored")
        XCTAssertNil(ObservedAddress.sourceGroup(inPayload: [0x03, 0xff]), "a truncated payload is ignored")
        XCTAssertNil(ObservedAddress.sourceGroup(inPayload: TLV.encode([TLV(type: PayloadTLV.features, value: [0, 0, 0, 0])])))
    }
}
