import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class DirectoryStoreTests: XCTestCase {
    let now = Fixtures.now

    private func store(_ limits: DirectoryLimits = .init()) throws -> DirectoryStore {
        try DirectoryStore(path: nil, alliance: Fixtures.closed.0, limits: limits, now: now)
    }

    func test_recordIsAddedUpdatedAndOlderOrEqualOnesLeaveItUnchanged() throws {
        let s = try store()
        let node = try TestNode()
        let first = try node.signedRecord(now: now - 300)
        XCTAssertEqual(s.offerRecord(first, now: now), .added)
        XCTAssertEqual(s.offerRecord(first, now: now), .unchanged)
        let newer = try node.signedRecord(now: now)
        XCTAssertEqual(s.offerRecord(newer, now: now), .updated)
        XCTAssertEqual(s.offerRecord(first, now: now), .unchanged, "older window")
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now + 10), now: now), .unchanged, "same window, other bytes")
        XCTAssertEqual(s.member(node.nodeID, now: now)?.signed, newer)
        XCTAssertEqual(s.recordCount, 1)
        XCTAssertEqual(s.members(now: now).map(\.nodeID), [node.nodeID])
        XCTAssertEqual(s.member(node.nodeID, now: now)?.country, "DE")
        XCTAssertEqual(s.member(node.nodeID, now: now)?.roles, [.front, .exit])
    }

    func test_rejectionsAreCountedByReason() throws {
        let s = try store()
        let node = try TestNode()
        XCTAssertEqual(s.offerRecord(try node.signedRecord(endorsedBy: .none), now: now), .rejected(.noEndorsement))
        XCTAssertEqual(s.offerRecord([1, 2, 3], now: now), .rejected(.malformed))
        XCTAssertEqual(s.offerRecord([4, 5, 6], now: now), .rejected(.malformed))
        XCTAssertEqual(s.rejections, [.noEndorsement: 1, .malformed: 2])
        XCTAssertEqual(s.recordCount, 0)
    }

    func test_withdrawalLeavesATombstoneThatRefusesOlderRecords() throws {
        let s = try store()
        let node = try TestNode()
        let peer = try TestNode()
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now - 300), now: now), .added)
        XCTAssertEqual(s.offerRecord(try peer.signedRecord(), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try peer.attest(node), now: now), .added)
        let withdrawal = try node.signedRecord(now: now - 60, withdraw: true)
        XCTAssertEqual(s.offerRecord(withdrawal, now: now), .updated)
        XCTAssertNil(s.member(node.nodeID, now: now))
        XCTAssertEqual(s.members(now: now).map(\.nodeID), [peer.nodeID])
        XCTAssertEqual(s.recordCount, 2)
        XCTAssertEqual(s.tombstoneCount, 1)
        XCTAssertEqual(s.attestationCount, 0, "attestations about a withdrawn member go")
        XCTAssertTrue(s.digest().contains { $0.nodeID == node.nodeID.bytes }, "tombstones are still gossiped")
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now - 240), now: now), .rejected(.withdrawn))
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now - 60), now: now), .rejected(.withdrawn), "same window")
        XCTAssertEqual(s.offerRecord(withdrawal, now: now), .unchanged)
        XCTAssertEqual(s.offerAttestation(try peer.attest(node), now: now), .rejected(.unknownSubject))
        // Coming back later with a newer record is allowed.
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now + 60), now: now + 60), .updated)
        XCTAssertNotNil(s.member(node.nodeID, now: now + 60))
        // Tombstones expire after 7 windows.
        XCTAssertEqual(s.offerRecord(try peer.signedRecord(now: now + 60, withdraw: true), now: now + 60), .updated)
        XCTAssertEqual(s.expire(now: now + 60 + 7 * 60), 0)
        XCTAssertEqual(s.expire(now: now + 60 + 8 * 60), 2)
        XCTAssertEqual(s.recordCount, 0)
    }

    func test_withdrawalInTheSameWindowReplacesTheLiveRecord() throws {
        let s = try store()
        let node = try TestNode()
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now), now: now), .added)
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now + 5, withdraw: true), now: now + 5), .updated)
        XCTAssertNil(s.member(node.nodeID, now: now + 5))
    }

    func test_unknownWithdrawalIsKeptAsATombstone() throws {
        let s = try store()
        let node = try TestNode()
        XCTAssertEqual(s.offerRecord(try node.signedRecord(withdraw: true), now: now), .added)
        XCTAssertTrue(s.members(now: now).isEmpty)
        XCTAssertEqual(s.offerRecord(try node.signedRecord(now: now - 120), now: now), .rejected(.withdrawn))
    }

    func test_expireDropsStaleAndExpiredRecordsWithTheirAttestations() throws {
        let s = try store()
        let shortLived = try TestNode()
        let longLived = try TestNode()
        XCTAssertEqual(s.offerRecord(try shortLived.signedRecord(expiresIn: 60), now: now), .added)
        XCTAssertEqual(s.offerRecord(try longLived.signedRecord(), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try longLived.attest(shortLived), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try shortLived.attest(longLived), now: now), .added)
        XCTAssertEqual(s.attestationCount, 2)
        XCTAssertEqual(s.members(now: now + 61).map(\.nodeID), [longLived.nodeID], "expired members are hidden at once")
        XCTAssertEqual(s.expire(now: now + 61), 1)
        XCTAssertEqual(s.attestationCount, 0)
        XCTAssertEqual(s.expire(now: now + 7 * 60), 0)
        XCTAssertEqual(s.expire(now: now + 8 * 60), 1, "8 windows old is stale")
        XCTAssertEqual(s.recordCount, 0)
    }

    func test_onChangeAndChangeCounterFollowAcceptedChangesOnly() throws {
        let s = try store()
        let calls = Counter()
        s.onChange = { calls.increment() }
        let node = try TestNode()
        let signed = try node.signedRecord()
        XCTAssertEqual(s.changeCounter, 0)
        _ = s.offerRecord(signed, now: now)
        _ = s.offerRecord(signed, now: now)
        _ = s.offerRecord([0], now: now)
        XCTAssertEqual(s.changeCounter, 1)
        XCTAssertEqual(calls.value, 1)
        _ = s.expire(now: now + 3 * 3600)
        XCTAssertEqual(s.changeCounter, 2)
        XCTAssertEqual(calls.value, 2)
    }

    func test_concurrentOffersAreSafe() throws {
        let s = try store()
        let nodes = try (0..<8).map { _ in try TestNode() }
        let signed = try nodes.map { try $0.signedRecord() }
        let now = self.now
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            _ = s.offerRecord(signed[i % 8], now: now)
            _ = s.members(now: now)
            _ = s.digest()
        }
        XCTAssertEqual(s.recordCount, 8)
        XCTAssertEqual(s.changeCounter, 8)
    }
}

/// A thread-safe call counter for `onChange`.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
