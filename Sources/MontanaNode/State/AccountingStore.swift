import Foundation
import GRDB

/// The exit's per-account totals in SQLite (PROTOCOL.md 7.5): bytes up, bytes down, streams
/// opened, refusals. Totals only: no destinations, no addresses, no per-connection times. The file
/// is created with mode 0600 (account ids are personal data).
///
/// Rows are bounded: `prune` folds accounts idle longer than `idleDays`, and beyond `maxRows`
/// the least recently seen ones, into a single rollup row, so node-wide sums stay exact while
/// the table cannot grow one row per account forever.
///
/// Privacy: when an account was last seen is stored only as a day number (UTC days since
/// 1970), the coarsest clock that can age rows. Second-resolution timestamps per account would
/// let anyone holding the file correlate a user's sessions with other logs; a day cannot.
public final class AccountingStore: Sendable {
    /// Accounts unseen for 30 days are folded: a monthly billing period stays per account.
    public static let defaultIdleDays = 30
    /// 100,000 rows (about 8 MB of SQLite) before the oldest are folded regardless of age.
    public static let defaultMaxRows = 100_000
    /// Seconds per accounting day.
    static let secondsPerDay = 86_400.0

    public struct Totals: Equatable, Sendable {
        public var bytesUp = 0
        public var bytesDown = 0
        public var streams = 0
        public var refusals = 0

        public init(bytesUp: Int = 0, bytesDown: Int = 0, streams: Int = 0, refusals: Int = 0) {
            self.bytesUp = bytesUp
            self.bytesDown = bytesDown
            self.streams = streams
            self.refusals = refusals
        }

        public mutating func add(_ other: Totals) {
            bytesUp += other.bytesUp
            bytesDown += other.bytesDown
            streams += other.streams
            refusals += other.refusals
        }
    }

    private let queue: DatabaseQueue
    public let path: String

    public init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        queue = try DatabaseQueue(path: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 account totals") { db in
            try db.execute(sql: """
                CREATE TABLE account_totals (
                    account_id BLOB PRIMARY KEY NOT NULL,
                    bytes_up INTEGER NOT NULL DEFAULT 0,
                    bytes_down INTEGER NOT NULL DEFAULT 0,
                    streams INTEGER NOT NULL DEFAULT 0,
                    refusals INTEGER NOT NULL DEFAULT 0
                ) WITHOUT ROWID
                """)
        }
        let today = AccountingStore.today()
        migrator.registerMigration("v2 last seen day and rollup") { db in
            // Existing rows count as seen today: they age from the upgrade, never pruned at once.
            try db.execute(sql: "ALTER TABLE account_totals ADD COLUMN last_seen_day INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "UPDATE account_totals SET last_seen_day = ?", arguments: [today])
            try db.execute(sql: "CREATE INDEX account_totals_by_day ON account_totals (last_seen_day)")
            try db.execute(sql: """
                CREATE TABLE account_rollup (
                    id INTEGER PRIMARY KEY CHECK (id = 0),
                    accounts INTEGER NOT NULL DEFAULT 0,
                    bytes_up INTEGER NOT NULL DEFAULT 0,
                    bytes_down INTEGER NOT NULL DEFAULT 0,
                    streams INTEGER NOT NULL DEFAULT 0,
                    refusals INTEGER NOT NULL DEFAULT 0
                )
                """)
            try db.execute(sql: "INSERT INTO account_rollup (id) VALUES (0)")
        }
        try migrator.migrate(queue)
    }

    /// Today's accounting day: whole UTC days since 1970, clamped to 0...Int32.max so a wild
    /// clock can neither trap nor make every row look idle for ever.
    public static func today() -> Int { day(unixSeconds: Date().timeIntervalSince1970) }

    public static func day(unixSeconds: Double) -> Int {
        guard unixSeconds.isFinite, unixSeconds > 0 else { return 0 }
        let days = (unixSeconds / secondsPerDay).rounded(.down)
        return days >= Double(Int32.max) ? Int(Int32.max) : Int(days)
    }

    /// Adds deltas to the stored totals in one transaction and marks the accounts seen on `day`
    /// (never moving a row's day backwards when the clock steps back).
    public func add(_ deltas: [[UInt8]: Totals], day: Int = AccountingStore.today()) throws {
        guard !deltas.isEmpty else { return }
        try queue.write { db in
            for (account, d) in deltas {
                try db.execute(sql: """
                    INSERT INTO account_totals (account_id, bytes_up, bytes_down, streams, refusals, last_seen_day)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(account_id) DO UPDATE SET
                        bytes_up = bytes_up + excluded.bytes_up, bytes_down = bytes_down + excluded.bytes_down,
                        streams = streams + excluded.streams, refusals = refusals + excluded.refusals,
                        last_seen_day = MAX(last_seen_day, excluded.last_seen_day)
                    """, arguments: [Data(account), d.bytesUp, d.bytesDown, d.streams, d.refusals, day])
            }
        }
    }

    /// What one `prune` folded into the rollup row.
    public struct PruneResult: Equatable, Sendable {
        /// Rows of accounts idle longer than the limit.
        public var idle = 0
        /// Rows beyond the row cap, least recently seen first.
        public var overCap = 0

        public var total: Int { idle + overCap }

        public init(idle: Int = 0, overCap: Int = 0) {
            self.idle = idle
            self.overCap = overCap
        }
    }

    /// Folds rows of accounts last seen more than `idleDays` before `today`, then the least
    /// recently seen rows beyond `maxRows`, into the rollup row, in one transaction. Sums over
    /// all accounts (`summary().totals`) are unchanged by it. An account that comes back after
    /// being folded starts a fresh row; its old totals stay in the rollup.
    @discardableResult
    public func prune(today: Int = AccountingStore.today(), idleDays: Int = AccountingStore.defaultIdleDays,
                      maxRows: Int = AccountingStore.defaultMaxRows) throws -> PruneResult {
        // Both are config-bounded; clamp anyway so no input can make the arithmetic trap.
        let idle = min(max(idleDays, 0), 36_500), cap = max(maxRows, 0)
        let (difference, overflow) = today.subtractingReportingOverflow(idle)
        let cutoff = overflow ? Int.min : difference
        return try queue.write { db in
            var result = PruneResult()
            result.idle = try fold(db, where: "last_seen_day < ?", arguments: [cutoff])
            let rows = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account_totals") ?? 0
            if rows > cap {
                result.overCap = try fold(db, where: """
                    account_id IN (SELECT account_id FROM account_totals ORDER BY last_seen_day, account_id LIMIT ?)
                    """, arguments: [rows - cap])
            }
            return result
        }
    }

    /// Adds the selected rows to the rollup and deletes them; returns how many.
    private func fold(_ db: Database, where condition: String, arguments: StatementArguments) throws -> Int {
        try db.execute(sql: """
            UPDATE account_rollup SET
                accounts = accounts + (SELECT COUNT(*) FROM account_totals WHERE \(condition)),
                bytes_up = bytes_up + (SELECT COALESCE(SUM(bytes_up), 0) FROM account_totals WHERE \(condition)),
                bytes_down = bytes_down + (SELECT COALESCE(SUM(bytes_down), 0) FROM account_totals WHERE \(condition)),
                streams = streams + (SELECT COALESCE(SUM(streams), 0) FROM account_totals WHERE \(condition)),
                refusals = refusals + (SELECT COALESCE(SUM(refusals), 0) FROM account_totals WHERE \(condition))
            WHERE id = 0
            """, arguments: arguments + arguments + arguments + arguments + arguments)
        try db.execute(sql: "DELETE FROM account_totals WHERE \(condition)", arguments: arguments)
        return db.changesCount
    }

    /// The rollup row: how many account rows were folded and their summed totals.
    public func rollup() throws -> (accounts: Int, totals: Totals) {
        try queue.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT accounts, bytes_up, bytes_down, streams, refusals FROM account_rollup WHERE id = 0")
            else { return (0, Totals()) }
            return (row[0], Totals(bytesUp: row[1], bytesDown: row[2], streams: row[3], refusals: row[4]))
        }
    }

    /// Per-account rows currently stored (bounded by `prune`).
    public func rowCount() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account_totals") ?? 0 }
    }

    /// An account's last-seen day, nil when it has no row (never seen, or folded).
    public func lastSeenDay(account: [UInt8]) throws -> Int? {
        try queue.read { db in
            try Int.fetchOne(db, sql: "SELECT last_seen_day FROM account_totals WHERE account_id = ?", arguments: [Data(account)])
        }
    }

    public func totals(account: [UInt8]) throws -> Totals? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT bytes_up, bytes_down, streams, refusals FROM account_totals WHERE account_id = ?",
                             arguments: [Data(account)]).map { Totals(bytesUp: $0[0], bytesDown: $0[1], streams: $0[2], refusals: $0[3]) }
        }
    }

    /// Bytes (up + down) stored for one account (0 if it has no row): a pass's quota is checked
    /// against it plus what is not flushed yet.
    public func bytes(account: [UInt8]) throws -> UInt64 {
        try queue.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT bytes_up + bytes_down FROM account_totals WHERE account_id = ?",
                                       arguments: [Data(account)])
            let total: Int64 = row?[0] ?? 0
            return UInt64(clamping: total)
        }
    }

    /// Sums over all accounts (the rollup of folded ones included), and how many accounts have
    /// a row of their own (seen within the idle limit and the row cap).
    public func summary() throws -> (accounts: Int, totals: Totals) {
        try queue.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT (SELECT COUNT(*) FROM account_totals),
                       (SELECT COALESCE(SUM(bytes_up), 0) FROM account_totals) + r.bytes_up,
                       (SELECT COALESCE(SUM(bytes_down), 0) FROM account_totals) + r.bytes_down,
                       (SELECT COALESCE(SUM(streams), 0) FROM account_totals) + r.streams,
                       (SELECT COALESCE(SUM(refusals), 0) FROM account_totals) + r.refusals
                FROM account_rollup r WHERE r.id = 0
                """)
            guard let row else { return (0, Totals()) }
            return (row[0], Totals(bytesUp: row[1], bytesDown: row[2], streams: row[3], refusals: row[4]))
        }
    }
}
