import MontanaCrypto
import MontanaWire
import XCTest
@testable import MontanaNode

/// Issue 6 item 7: a wall-clock step backwards trapped the node on the next (unauthenticated)
/// directory request, in `now - signedAt` on UInt64.
final class DirectoryRecordsClockTests: XCTestCase {
    /// The signing times the record factory saw (the tests call it from one thread).
    private final class Signings: @unchecked Sendable {
        var times: [UInt64] = []
    }

    private static let identity = try! IdentityKey(seed: [UInt8](repeating: 0x44, count: 32))
    private static let start: UInt64 = 1_800_000_000

    private func makeRecords(signings: Signings) -> DirectoryRecords {
        DirectoryRecords(identity: Self.identity) { now in
            signings.times.append(now)
            let entry = try EgressDirectoryEntry(exitNodeID: Self.identity.nodeID.bytes, countryCode: "DE", capacityClass: .standard,
                                                 advertisedWindow: UInt32(truncatingIfNeeded: now / 30))
            return DirectoryRecord(entry: entry, identityPublicKey: Self.identity.publicKey, kemPublicKey: [UInt8](repeating: 2, count: 1216),
                                   roles: [.front, .exit], endpoints: [Endpoint(profile: 0, host: "198.51.100.1", port: 7443)],
                                   issuedAt: now, expiresAt: now + DirectoryRecords.lifetime)
        }
    }

    func test_aClockStepBackwardsReSignsTheRecordInsteadOfTrapping() throws {
        let signings = Signings()
        let records = makeRecords(signings: signings)
        XCTAssertEqual(records.current(now: Self.start).count, 1)
        XCTAssertEqual(records.current(now: Self.start + 10).count, 1, "fresh: served from the cache")
        XCTAssertEqual(signings.times, [Self.start])

        // An hour back (NTP correction, VM restore): a sane answer, signed at the new time.
        let back = Self.start - 3600
        let served = records.current(now: back)
        XCTAssertEqual(served.count, 1)
        XCTAssertEqual(signings.times, [Self.start, back])
        let record = try RecordSigner.verify(try XCTUnwrap(served.first))
        XCTAssertEqual(record.issuedAt, back)
        XCTAssertEqual(records.current(now: back + 1).count, 1, "and cached again from there")
        XCTAssertEqual(signings.times.count, 2)
        XCTAssertEqual(records.current(now: 0).count, 1, "even to the epoch")
    }

    func test_freshnessIsFalseForAnyBackwardsStepAndPastTheResignInterval() {
        XCTAssertTrue(DirectoryRecords.isFresh(signedAt: 100, now: 100))
        XCTAssertTrue(DirectoryRecords.isFresh(signedAt: 100, now: 100 + DirectoryRecords.resignInterval - 1))
        XCTAssertFalse(DirectoryRecords.isFresh(signedAt: 100, now: 100 + DirectoryRecords.resignInterval))
        XCTAssertFalse(DirectoryRecords.isFresh(signedAt: 100, now: 99))
        XCTAssertFalse(DirectoryRecords.isFresh(signedAt: .max, now: 0))
    }
}
