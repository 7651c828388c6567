import Foundation
import GRDB
import MontanaNode
import XCTest

final class AccountingStoreTests: XCTestCase {
    func test_totalsAccumulateAndSurviveReopening() throws {
        let dir = NSTemporaryDirectory() + "montana-state-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.sqlite"
        let alice = [UInt8](repeating: 1, count: 32), bob = [UInt8](repeating: 2, count: 32)
        do {
            let store = try AccountingStore(path: path)
            try store.add([alice: .init(bytesUp: 10, bytesDown: 100, streams: 1), bob: .init(refusals: 1)])
            try store.add([alice: .init(bytesUp: 5, bytesDown: 50, streams: 2)])
        }
        let reopened = try AccountingStore(path: path)
        XCTAssertEqual(try reopened.totals(account: alice), .init(bytesUp: 15, bytesDown: 150, streams: 3))
        XCTAssertEqual(try reopened.totals(account: bob), .init(refusals: 1))
        let summary = try reopened.summary()
        XCTAssertEqual(summary.accounts, 2)
        XCTAssertEqual(summary.totals, .init(bytesUp: 15, bytesDown: 150, streams: 3, refusals: 1))
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber).intValue
        XCTAssertEqual(mode, 0o600, "account ids are personal data: the file is private")
    }

    /// Accounts in the pruning test: enough that a per-row bug shows, small enough for a second.
    private let accountCount = 1_000
    /// A day well inside the 32-bit clamp (2024-09-13).
    private let today = 19_979

    private func temporaryStore() throws -> (AccountingStore, String) {
        let dir = NSTemporaryDirectory() + "montana-state-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try AccountingStore(path: dir + "/state.sqlite"), dir)
    }

    private func account(_ i: Int) -> [UInt8] {
        [UInt8(truncatingIfNeeded: i >> 8), UInt8(truncatingIfNeeded: i)] + [UInt8](repeating: 7, count: 30)
    }

    func test_idleAccountsAreFoldedIntoTheRollupAndTotalsArePreserved() throws {
        let (store, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 40 % last seen 45 days ago, 60 % today; every account has distinct totals.
        let idleCount = accountCount * 4 / 10
        for i in 0..<accountCount {
            try store.add([account(i): .init(bytesUp: i, bytesDown: 2 * i, streams: 1, refusals: i % 3)],
                          day: i < idleCount ? today - 45 : today)
        }
        let before = try store.summary()
        XCTAssertEqual(before.accounts, accountCount)
        XCTAssertEqual(try store.rowCount(), accountCount)

        let result = try store.prune(today: today, idleDays: 30, maxRows: AccountingStore.defaultMaxRows)
        XCTAssertEqual(result, .init(idle: idleCount, overCap: 0))
        XCTAssertEqual(try store.rowCount(), accountCount - idleCount)
        XCTAssertNil(try store.totals(account: account(0)), "an idle account's row is gone")
        XCTAssertEqual(try store.totals(account: account(idleCount)), .init(bytesUp: idleCount, bytesDown: 2 * idleCount, streams: 1,
                                                                           refusals: idleCount % 3))
        let after = try store.summary()
        XCTAssertEqual(after.totals, before.totals, "node-wide sums survive pruning")
        XCTAssertEqual(after.accounts, accountCount - idleCount)
        let rollup = try store.rollup()
        XCTAssertEqual(rollup.accounts, idleCount)
        XCTAssertEqual(rollup.totals.bytesUp, (0..<idleCount).reduce(0, +))
        XCTAssertEqual(try store.prune(today: today, idleDays: 30), .init(), "nothing left to fold")

        // Exactly 30 days idle stays; the 31st day folds.
        try store.add([account(5000): .init(streams: 1)], day: today - 30)
        XCTAssertEqual(try store.prune(today: today, idleDays: 30).idle, 0)
        XCTAssertEqual(try store.prune(today: today + 1, idleDays: 30).idle, 1)

        // A folded account that returns starts a fresh row; the sums still add up.
        try store.add([account(0): .init(bytesUp: 1_000_000)], day: today)
        XCTAssertEqual(try store.totals(account: account(0)), .init(bytesUp: 1_000_000))
        XCTAssertEqual(try store.summary().totals.bytesUp, before.totals.bytesUp + 1_000_000)
    }

    func test_rowCapFoldsTheLeastRecentlySeenFirst() throws {
        let (store, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cap = 250
        // Account i was last seen i / 100 days before today (0...9): all within the idle limit.
        for i in 0..<accountCount {
            try store.add([account(i): .init(bytesUp: 1, streams: 1)], day: today - i / 100)
        }
        let before = try store.summary().totals
        let result = try store.prune(today: today, idleDays: 30, maxRows: cap)
        XCTAssertEqual(result, .init(idle: 0, overCap: accountCount - cap))
        XCTAssertEqual(try store.rowCount(), cap)
        XCTAssertEqual(try store.summary().totals, before)
        XCTAssertEqual(try store.rollup().accounts, accountCount - cap)
        // The survivors are the 250 most recently seen: days 0 and 1 ago, and half of day 2.
        XCTAssertNotNil(try store.totals(account: account(0)))
        XCTAssertNotNil(try store.totals(account: account(199)))
        XCTAssertNil(try store.totals(account: account(999)), "seen 9 days ago: folded first")
        XCTAssertNil(try store.totals(account: account(300)))
        // The cap holds as new accounts keep arriving.
        for i in accountCount..<(accountCount + 100) {
            try store.add([account(i): .init(streams: 1)], day: today + 1)
            try store.prune(today: today + 1, idleDays: 30, maxRows: cap)
            XCTAssertLessThanOrEqual(try store.rowCount(), cap)
        }
        XCTAssertEqual(try store.summary().totals.streams, accountCount + 100)
    }

    func test_lastSeenIsADayNumberThatNeverMovesBackwards() throws {
        let (store, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let alice = account(1)
        try store.add([alice: .init(streams: 1)], day: today)
        XCTAssertEqual(try store.lastSeenDay(account: alice), today)
        try store.add([alice: .init(streams: 1)], day: today - 3)
        XCTAssertEqual(try store.lastSeenDay(account: alice), today, "a clock stepping back does not age the row")
        try store.add([alice: .init(streams: 1)], day: today + 2)
        XCTAssertEqual(try store.lastSeenDay(account: alice), today + 2)
        // Day numbers, not timestamps: 86,399 s after midnight is still the same day.
        XCTAssertEqual(AccountingStore.day(unixSeconds: Double(today) * 86_400 + 86_399), today)
        XCTAssertEqual(AccountingStore.day(unixSeconds: -5), 0)
        XCTAssertEqual(AccountingStore.day(unixSeconds: .infinity), 0)
        XCTAssertEqual(AccountingStore.day(unixSeconds: 1e300), Int(Int32.max))
        XCTAssertEqual(AccountingStore.today(), AccountingStore.day(unixSeconds: Date().timeIntervalSince1970))
    }

    func test_prunesWithHostileLimitsDoNotTrap() throws {
        let (store, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try store.add([account(1): .init(streams: 1)], day: 0)
        XCTAssertEqual(try store.prune(today: 0, idleDays: Int.max, maxRows: Int.max), .init())
        XCTAssertEqual(try store.prune(today: 0, idleDays: Int.min, maxRows: Int.min).total, 1)
        XCTAssertEqual(try store.summary().totals.streams, 1)
    }

    func test_aVersion1DatabaseIsUpgradedWithRowsCountedAsSeenToday() throws {
        let dir = NSTemporaryDirectory() + "montana-state-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.sqlite"
        // The schema and migration record the previous release wrote.
        do {
            let old = try DatabaseQueue(path: path)
            try old.write { db in
                try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
                try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v1 account totals')")
                try db.execute(sql: """
                    CREATE TABLE account_totals (account_id BLOB PRIMARY KEY NOT NULL, bytes_up INTEGER NOT NULL DEFAULT 0,
                        bytes_down INTEGER NOT NULL DEFAULT 0, streams INTEGER NOT NULL DEFAULT 0,
                        refusals INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID
                    """)
                try db.execute(sql: "INSERT INTO account_totals VALUES (?, 10, 20, 3, 1)", arguments: [Data(account(1))])
            }
        }
        let store = try AccountingStore(path: path)
        XCTAssertEqual(try store.totals(account: account(1)), .init(bytesUp: 10, bytesDown: 20, streams: 3, refusals: 1))
        XCTAssertEqual(try store.lastSeenDay(account: account(1)), AccountingStore.today())
        XCTAssertEqual(try store.prune().total, 0, "upgraded rows are not pruned at once")
        XCTAssertEqual(try store.summary().totals, .init(bytesUp: 10, bytesDown: 20, streams: 3, refusals: 1))
    }
}
