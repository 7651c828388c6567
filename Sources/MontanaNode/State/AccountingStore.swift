import Foundation
import GRDB

/// The exit's per-account totals in SQLite (PROTOCOL.md 7.5): bytes up, bytes down, streams
/// opened, refusals. Totals only: no destinations, no addresses, no per-connection times. The file
/// is created with mode 0600 (account ids are personal data).
public final class AccountingStore: Sendable {
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
        try migrator.migrate(queue)
    }

    /// Adds deltas to the stored totals in one transaction.
    public func add(_ deltas: [[UInt8]: Totals]) throws {
        guard !deltas.isEmpty else { return }
        try queue.write { db in
            for (account, d) in deltas {
                try db.execute(sql: """
                    INSERT INTO account_totals (account_id, bytes_up, bytes_down, streams, refusals) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(account_id) DO UPDATE SET
                        bytes_up = bytes_up + excluded.bytes_up, bytes_down = bytes_down + excluded.bytes_down,
                        streams = streams + excluded.streams, refusals = refusals + excluded.refusals
                    """, arguments: [Data(account), d.bytesUp, d.bytesDown, d.streams, d.refusals])
            }
        }
    }

    public func totals(account: [UInt8]) throws -> Totals? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT bytes_up, bytes_down, streams, refusals FROM account_totals WHERE account_id = ?",
                             arguments: [Data(account)]).map { Totals(bytesUp: $0[0], bytesDown: $0[1], streams: $0[2], refusals: $0[3]) }
        }
    }

    /// Sums over all accounts, and how many accounts there are.
    public func summary() throws -> (accounts: Int, totals: Totals) {
        try queue.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*), COALESCE(SUM(bytes_up), 0), COALESCE(SUM(bytes_down), 0),
                       COALESCE(SUM(streams), 0), COALESCE(SUM(refusals), 0) FROM account_totals
                """)
            guard let row else { return (0, Totals()) }
            return (row[0], Totals(bytesUp: row[1], bytesDown: row[2], streams: row[3], refusals: row[4]))
        }
    }
}
