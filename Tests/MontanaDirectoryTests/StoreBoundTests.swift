import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class StoreBoundTests: XCTestCase {
    let now = Fixtures.now

    func test_overTheRecordBoundTheLeastRecentlyCorroboratedGoesFirst() throws {
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, limits: DirectoryLimits(maxRecords: 8), now: now)
        let first = try (0..<8).map { i in try TestNode(host: "10.\(i).0.1", operator: "ops-\(i)") }
        for n in first { XCTAssertEqual(s.offerRecord(try n.signedRecord(), now: now), .added) }
        // first[0] is the oldest but has been corroborated (geolocated, its country, live attester).
        XCTAssertEqual(s.offerAttestation(try first[1].attest(first[0]), now: now), .added)
        // A session-only attestation does not protect first[2].
        XCTAssertEqual(s.offerAttestation(try first[3].attest(first[2], method: .sessionVerified), now: now), .added)

        let newcomer = try TestNode()
        XCTAssertEqual(s.offerRecord(try newcomer.signedRecord(), now: now), .added)
        XCTAssertEqual(s.recordCount, 8)
        XCTAssertNotNil(s.member(first[0].nodeID, now: now), "corroborated: kept")
        XCTAssertNil(s.member(first[1].nodeID, now: now), "never corroborated and first received: evicted")
        XCTAssertEqual(s.attestationCount, 1, "the evicted attester's attestation went with it")

        var later: [TestNode] = []
        for _ in 0..<7 {
            let n = try TestNode()
            later.append(n)
            XCTAssertEqual(s.offerRecord(try n.signedRecord(), now: now + 1), .added)
        }
        XCTAssertEqual(s.recordCount, 8)
        XCTAssertEqual(Set(s.members(now: now + 1).map(\.nodeID)), Set([first[0].nodeID] + later.map(\.nodeID)))
        XCTAssertEqual(s.attestationCount, 0)
    }

    func test_tombstonesCountAgainstTheBound() throws {
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, limits: DirectoryLimits(maxRecords: 2), now: now)
        let a = try TestNode(), b = try TestNode(), c = try TestNode()
        XCTAssertEqual(s.offerRecord(try a.signedRecord(withdraw: true), now: now), .added)
        XCTAssertEqual(s.offerRecord(try b.signedRecord(), now: now), .added)
        XCTAssertEqual(s.offerRecord(try c.signedRecord(), now: now), .added)
        XCTAssertEqual(s.recordCount, 2)
        XCTAssertEqual(s.tombstoneCount, 0)
    }

    /// The real bound, 4096, with real keys: 4100 ML-DSA key generations, signatures and checks.
    func test_fullSizeStoreStaysAt4096() throws {
        let start = Date()
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, now: now)
        XCTAssertEqual(s.limits.maxRecords, 4096)
        var nodes: [TestNode] = []
        for i in 0..<4100 {
            let n = try TestNode(host: "10.\(i >> 8).\(i & 0xff).1")
            nodes.append(n)
            XCTAssertEqual(s.offerRecord(try n.signedRecord(), now: now), .added)
            if i == 1 {
                XCTAssertEqual(s.offerAttestation(try nodes[1].attest(nodes[0]), now: now), .added)
            }
        }
        XCTAssertEqual(s.recordCount, 4096)
        XCTAssertNotNil(s.member(nodes[0].nodeID, now: now), "the corroborated one stays")
        for i in 1...4 { XCTAssertNil(s.member(nodes[i].nodeID, now: now), "never-corroborated, first received: evicted") }
        XCTAssertNotNil(s.member(nodes[5].nodeID, now: now))
        XCTAssertLessThanOrEqual(DigestEntry.encode(s.digest()).count + 16, SyncFrame.maxFrameBytes)
        print("4100 records generated and offered in \(Date().timeIntervalSince(start)) s")
    }
}
