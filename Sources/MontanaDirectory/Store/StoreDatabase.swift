import Foundation
import GRDB
import MontanaWire

/// The SQLite file behind a `DirectoryStore` (GRDB, one `DatabaseQueue` = one writer). The
/// in-memory state is authoritative; the file lets a restarted node keep what it knew. Every
/// row is re-validated on load, so a tampered file can only lose records, never inject them.
final class StoreDatabase {
    struct RecordRow {
        var nodeID: [UInt8]?
        var signed: [UInt8]?
        var firstSeen: Int64?
        var lastCorroborated: Int64?
    }

    struct AttestationRow {
        var subject: [UInt8]?
        var attester: [UInt8]?
        var signed: [UInt8]?
    }

    struct Opened {
        let database: StoreDatabase
        let records: [RecordRow]
        let attestations: [AttestationRow]
        let recovered: Bool
    }

    let queue: DatabaseQueue
    /// Transactions that failed (disk full, I/O error); the in-memory state stays right.
    private(set) var writeErrors = 0

    private init(queue: DatabaseQueue) {
        self.queue = queue
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE records (
                    node_id BLOB PRIMARY KEY NOT NULL,
                    "window" INTEGER NOT NULL,
                    issued_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    withdrawn INTEGER NOT NULL,
                    signed BLOB NOT NULL,
                    first_seen INTEGER NOT NULL,
                    last_corroborated INTEGER NOT NULL);
                CREATE TABLE attestations (
                    subject BLOB NOT NULL,
                    attester BLOB NOT NULL,
                    "window" INTEGER NOT NULL,
                    signed BLOB NOT NULL,
                    PRIMARY KEY (subject, attester));
                CREATE INDEX attestations_attester ON attestations(attester);
                """)
        }
        return m
    }

    /// Opens (creating directories and the file), migrates and reads every row. A file SQLite
    /// calls corrupt or not a database, or whose schema is not ours, is renamed to
    /// `path.corrupt-<unix>` (with its -wal/-shm/-journal companions) and a new one created.
    static func open(path: String?, now: UInt64) throws -> Opened {
        guard let path else { return try attempt(queue: DatabaseQueue(), recovered: false) }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
        do {
            return try attempt(queue: DatabaseQueue(path: path, configuration: configuration()), recovered: false)
        } catch let error as DatabaseError where isDamage(error) {
            try moveAside(path, now: now)
            return try attempt(queue: DatabaseQueue(path: path, configuration: configuration()), recovered: true)
        }
    }

    private static func configuration() -> Configuration {
        var c = Configuration()
        c.journalMode = .wal
        // The store is a cache gossip refills: losing the last transaction on power loss is fine.
        c.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        return c
    }

    private static func isDamage(_ e: DatabaseError) -> Bool {
        [.SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_ERROR, .SQLITE_FORMAT, .SQLITE_SCHEMA, .SQLITE_MISMATCH].contains(e.resultCode)
    }

    private static func attempt(queue: DatabaseQueue, recovered: Bool) throws -> Opened {
        do {
            try migrator.migrate(queue)
            let (records, attestations) = try queue.read { db in
                let r = try Row.fetchAll(db, sql: "SELECT node_id, signed, first_seen, last_corroborated FROM records ORDER BY first_seen, rowid").map {
                    RecordRow(nodeID: bytes($0["node_id"]), signed: bytes($0["signed"]),
                              firstSeen: Int64.fromDatabaseValue($0["first_seen"]), lastCorroborated: Int64.fromDatabaseValue($0["last_corroborated"]))
                }
                let a = try Row.fetchAll(db, sql: "SELECT subject, attester, signed FROM attestations ORDER BY rowid").map {
                    AttestationRow(subject: bytes($0["subject"]), attester: bytes($0["attester"]), signed: bytes($0["signed"]))
                }
                return (r, a)
            }
            return Opened(database: StoreDatabase(queue: queue), records: records, attestations: attestations, recovered: recovered)
        } catch {
            try? queue.close()
            throw error
        }
    }

    private static func bytes(_ value: DatabaseValue) -> [UInt8]? {
        guard case .blob(let d) = value.storage else { return nil }
        return Array(d)
    }

    private static func moveAside(_ path: String, now: UInt64) throws {
        let aside = "\(path).corrupt-\(now)"
        let fm = FileManager.default
        if fm.fileExists(atPath: aside) { try? fm.removeItem(atPath: aside) }
        try fm.moveItem(atPath: path, toPath: aside)
        for suffix in ["-wal", "-shm", "-journal"] where fm.fileExists(atPath: path + suffix) {
            try? fm.removeItem(atPath: aside + suffix)
            try? fm.moveItem(atPath: path + suffix, toPath: aside + suffix)
        }
    }

    /// Writes `ops` in one transaction.
    func apply(_ ops: [StoreOp]) {
        guard !ops.isEmpty else { return }
        do {
            try queue.write { db in
                for op in ops { try Self.apply(op, db) }
            }
        } catch {
            writeErrors += 1
        }
    }

    private static func apply(_ op: StoreOp, _ db: Database) throws {
        switch op {
        case .putRecord(let r):
            let rec = r.validated.record
            try db.execute(sql: """
                INSERT OR REPLACE INTO records (node_id, "window", issued_at, expires_at, withdrawn, signed, first_seen, last_corroborated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [Data(r.nodeID.bytes), Int64(r.window), Int64(clamping: rec.issuedAt), Int64(clamping: rec.expiresAt),
                                 r.isTombstone ? 1 : 0, Data(r.validated.signed), Int64(clamping: r.firstSeen), Int64(r.lastCorroborated)])
        case .deleteRecord(let id):
            try db.execute(sql: "DELETE FROM records WHERE node_id = ?", arguments: [Data(id)])
        case .putAttestation(let a):
            try db.execute(sql: "INSERT OR REPLACE INTO attestations (subject, attester, \"window\", signed) VALUES (?, ?, ?, ?)",
                           arguments: [Data(a.subject.bytes), Data(a.attester.bytes), Int64(a.window), Data(a.signed)])
        case .deleteAttestation(let subject, let attester):
            try db.execute(sql: "DELETE FROM attestations WHERE subject = ? AND attester = ?", arguments: [Data(subject), Data(attester)])
        case .deleteAttestationsInvolving(let id):
            try db.execute(sql: "DELETE FROM attestations WHERE subject = ? OR attester = ?", arguments: [Data(id), Data(id)])
        case .setLastCorroborated(let id, let window):
            try db.execute(sql: "UPDATE records SET last_corroborated = ? WHERE node_id = ?", arguments: [Int64(window), Data(id)])
        }
    }
}
