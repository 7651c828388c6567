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

    /// The real bound, 4096. Real keys cost about 26 ms a record in a debug build (ML-DSA keygen,
    /// two signatures, two checks: 4100 took 107 s), so this drives the store's state directly
    /// with records that are taken as validated; the test above covers the same rule end to end.
    func test_fullSizeStoreStaysAt4096() throws {
        var state = StoreState(alliance: Fixtures.openAlliance, limits: DirectoryLimits())
        XCTAssertEqual(state.limits.maxRecords, 4096)
        let nodes = try (0..<4100).map { i in try Self.syntheticRecord(i) }
        for (i, v) in nodes.enumerated() {
            XCTAssertEqual(state.insert(v, now: now), .added)
            if i == 1 {
                let a = Attestation(subject: nodes[0].nodeID.bytes, countryCode: "DE", window: Fixtures.window,
                                    attester: nodes[1].nodeID.bytes, method: .egressGeolocated)
                let validated = ValidatedAttestation(attestation: a, signed: [1], subject: nodes[0].nodeID, attester: nodes[1].nodeID)
                XCTAssertEqual(state.accept(validated, now: now), .added)
                XCTAssertEqual(state.records[nodes[0].nodeID]?.lastCorroborated, Fixtures.window)
            }
        }
        XCTAssertEqual(state.records.count, 4096)
        XCTAssertNotNil(state.records[nodes[0].nodeID], "the corroborated one stays")
        for i in 1...4 { XCTAssertNil(state.records[nodes[i].nodeID], "never corroborated, first received: evicted") }
        XCTAssertNotNil(state.records[nodes[5].nodeID])
        XCTAssertNotNil(state.records[nodes[4099].nodeID], "a newcomer always gets in")
        XCTAssertEqual(state.attestationTotal, 0, "the attester was evicted, its attestation with it")
        XCTAssertLessThanOrEqual(SyncFrame(digest: DigestEntry.encode(state.digest())).encode().count, SyncFrame.maxFrameBytes)
    }

    /// A record with a distinct node id, as if it had passed validation.
    static func syntheticRecord(_ i: Int) throws -> ValidatedRecord {
        var id = [UInt8](repeating: 0, count: 32)
        id[0] = UInt8(i >> 8)
        id[1] = UInt8(i & 0xff)
        let entry = try EgressDirectoryEntry(exitNodeID: id, countryCode: "DE", capacityClass: .standard, advertisedWindow: Fixtures.window)
        let record = DirectoryRecord(entry: entry, identityPublicKey: [UInt8](repeating: 0, count: 1952), kemPublicKey: [UInt8](repeating: 0, count: 1216),
                                     roles: [.front, .exit], endpoints: [Endpoint(profile: 0, host: "10.\(i >> 8).\(i & 0xff).1", port: 443)],
                                     issuedAt: Fixtures.now, expiresAt: Fixtures.now + 3600)
        return ValidatedRecord(record: record, signed: id, nodeID: try NodeID(bytes: id), endorsement: nil)
    }
}
