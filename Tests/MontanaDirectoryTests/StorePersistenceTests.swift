import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class StorePersistenceTests: XCTestCase {
    let now = Fixtures.now
    var dir = ""

    override func setUpWithError() throws { dir = try Fixtures.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func test_storeSurvivesReopenAndRevalidatesRows() throws {
        let path = dir + "/state/directory.sqlite"
        let n = try (0..<4).map { i in try TestNode(host: "10.\(i).0.1", operator: "ops-\(i)") }
        var digest: [DigestEntry] = []
        do {
            let s = try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now)
            XCTAssertFalse(s.recovered)
            XCTAssertEqual(s.path, path)
            for i in 0..<3 { XCTAssertEqual(s.offerRecord(try n[i].signedRecord(), now: now), .added) }
            XCTAssertEqual(s.offerRecord(try n[3].signedRecord(withdraw: true), now: now), .added)
            XCTAssertEqual(s.offerAttestation(try n[1].attest(n[0]), now: now), .added)
            XCTAssertEqual(s.offerAttestation(try n[2].attest(n[0]), now: now), .added)
            XCTAssertEqual(s.member(n[0].nodeID, now: now)?.corroboration.state, .corroborated)
            digest = s.digest()
            XCTAssertEqual(s.writeErrors, 0)
        }
        let reopened = try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now + 60)
        XCTAssertFalse(reopened.recovered)
        XCTAssertEqual(reopened.digest(), digest)
        XCTAssertEqual(reopened.recordCount, 4)
        XCTAssertEqual(reopened.tombstoneCount, 1)
        XCTAssertEqual(reopened.attestationCount, 2)
        XCTAssertEqual(reopened.member(n[0].nodeID, now: now + 60)?.corroboration.state, .corroborated)
        XCTAssertEqual(reopened.offerRecord(try n[3].signedRecord(now: now - 60), now: now + 60), .rejected(.withdrawn))

        // Reopened with a smaller bound: the corroborated record is kept, the first never-corroborated one goes.
        let smaller = try DirectoryStore(path: path, alliance: Fixtures.closed.0, limits: DirectoryLimits(maxRecords: 3), now: now + 60)
        XCTAssertEqual(smaller.recordCount, 3)
        XCTAssertNotNil(smaller.member(n[0].nodeID, now: now + 60))

        // Much later every row is stale: dropped on load, and from the file.
        let later = try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now + 3600)
        XCTAssertEqual(later.recordCount, 0)
        XCTAssertEqual(later.attestationCount, 0)
        XCTAssertEqual(try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now).recordCount, 0)
    }

    func test_rowsFromAnotherAllianceAreDroppedOnLoad() throws {
        let path = dir + "/directory.sqlite"
        let x = try TestNode()
        do {
            let s = try DirectoryStore(path: path, alliance: Fixtures.openAlliance, now: now)
            XCTAssertEqual(s.offerRecord(try x.signedRecord(endorsedBy: .none), now: now), .added)
        }
        XCTAssertEqual(try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now).recordCount, 0)
        XCTAssertEqual(try DirectoryStore(path: path, alliance: Fixtures.openAlliance, now: now).recordCount, 0, "deleted, not skipped")
    }

    func test_corruptDatabaseIsMovedAsideAndReplaced() throws {
        let path = dir + "/directory.sqlite"
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        try garbage.write(to: URL(fileURLWithPath: path))
        let s = try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now)
        XCTAssertTrue(s.recovered)
        XCTAssertEqual(FileManager.default.contents(atPath: "\(path).corrupt-\(now)"), garbage)
        let x = try TestNode()
        XCTAssertEqual(s.offerRecord(try x.signedRecord(), now: now), .added)
        let again = try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now)
        XCTAssertFalse(again.recovered)
        XCTAssertEqual(again.recordCount, 1)
    }

    func test_sqliteHeaderWithGarbageIsRecoveredToo() throws {
        let path = dir + "/directory.sqlite"
        var bytes = Array("SQLite format 3\0".utf8)
        bytes += (0..<4080).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let s = try DirectoryStore(path: path, alliance: Fixtures.closed.0, now: now)
        XCTAssertTrue(s.recovered)
        XCTAssertEqual(s.recordCount, 0)
    }
}
