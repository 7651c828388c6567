import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class StoreSyncTests: XCTestCase {
    let now = Fixtures.now

    private func store() throws -> DirectoryStore {
        try DirectoryStore(path: nil, alliance: Fixtures.closed.0, now: now)
    }

    /// One direction of a gossip exchange: `from` answers `to`'s digest.
    @discardableResult
    private func pull(into to: DirectoryStore, from: DirectoryStore) -> (records: Int, attestations: Int) {
        let (records, attestations) = from.newer(than: to.digest(), now: now)
        for r in records { XCTAssertNotEqual(to.offerRecord(r, now: now), .rejected(.malformed)) }
        for a in attestations { _ = to.offerAttestation(a, now: now) }
        return (records.count, attestations.count)
    }

    func test_digestAndNewerConvergeTwoStores() throws {
        let n = try (0..<6).map { i in try TestNode(host: "10.\(i).0.1", operator: "ops-\(i)") }
        let a = try store(), b = try store()
        for i in 0..<3 { XCTAssertEqual(a.offerRecord(try n[i].signedRecord(), now: now), .added) }
        XCTAssertEqual(a.offerAttestation(try n[0].attest(n[1]), now: now), .added)
        XCTAssertEqual(a.offerAttestation(try n[1].attest(n[2]), now: now), .added)

        XCTAssertEqual(b.offerRecord(try n[2].signedRecord(now: now - 120), now: now), .added)
        XCTAssertEqual(b.offerRecord(try n[3].signedRecord(), now: now), .added)
        XCTAssertEqual(b.offerRecord(try n[4].signedRecord(withdraw: true), now: now), .added)
        XCTAssertEqual(b.offerAttestation(try n[3].attest(n[2]), now: now), .added)

        let toB = pull(into: b, from: a)
        XCTAssertEqual(toB.records, 3, "n0, n1 missing; n2 older")
        let toA = pull(into: a, from: b)
        XCTAssertEqual(toA.records, 2, "n3 and the tombstone of n4")

        XCTAssertEqual(a.digest(), b.digest())
        XCTAssertEqual(a.members(now: now).map(\.signed), b.members(now: now).map(\.signed))
        XCTAssertEqual(a.attestationCount, 3)
        XCTAssertEqual(b.attestationCount, 3)
        XCTAssertEqual(a.member(n[2].nodeID, now: now)?.corroboration, b.member(n[2].nodeID, now: now)?.corroboration)
        XCTAssertEqual(a.member(n[2].nodeID, now: now)?.corroboration.attesters, 2)

        // Converged: only tombstones are offered again (a peer may hold the live record of that window).
        XCTAssertEqual(pull(into: b, from: a).attestations, 0)
        XCTAssertEqual(a.newer(than: b.digest(), now: now).records.count, 1)
        let before = (a.changeCounter, b.changeCounter)
        pull(into: b, from: a)
        pull(into: a, from: b)
        XCTAssertEqual(before.0, a.changeCounter)
        XCTAssertEqual(before.1, b.changeCounter)
    }

    func test_attestationDigestIsZeroWithoutAttestationsAndChangesWithThem() throws {
        let x = try TestNode(), y = try TestNode()
        let s = try store()
        XCTAssertEqual(s.offerRecord(try x.signedRecord(), now: now), .added)
        XCTAssertEqual(s.offerRecord(try y.signedRecord(), now: now), .added)
        let entry = { s.digest().first { $0.nodeID == x.nodeID.bytes } }
        XCTAssertEqual(entry()?.attestationDigest, [UInt8](repeating: 0, count: 8))
        XCTAssertEqual(entry()?.window, Fixtures.window)
        XCTAssertEqual(s.offerAttestation(try y.attest(x), now: now), .added)
        var expected = y.nodeID.bytes
        expected.appendLE(Fixtures.window)
        XCTAssertEqual(entry()?.attestationDigest, Array(Digests.sha256(expected).prefix(8)))
        // A peer with the same digest is sent nothing about x.
        let same = s.digest()
        XCTAssertTrue(s.newer(than: same, now: now).attestations.isEmpty)
        XCTAssertTrue(s.newer(than: same, now: now).records.isEmpty)
    }

    func test_staleRecordsAreNotOffered() throws {
        let x = try TestNode()
        let s = try store()
        XCTAssertEqual(s.offerRecord(try x.signedRecord(), now: now), .added)
        XCTAssertEqual(s.newer(than: [], now: now).records.count, 1)
        XCTAssertEqual(s.newer(than: [], now: now + 8 * 60).records.count, 0)
    }
}
