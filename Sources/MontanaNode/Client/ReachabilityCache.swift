import Crypto
import Foundation
import GRDB
import MontanaClient
import MontanaCrypto

/// The client's own reachability observations on disk (`client-reachability.sqlite` beside the
/// directory cache: its own file, so neither store ever waits on the other's writes),
/// so that after a restart it starts with the fronts that worked from this network. Keyed by a
/// hash of the source group (the client's own /16 is not written in clear), per front: successes,
/// failures, last outcome, answer time; no timestamps. At most 256 fronts per network and 8
/// networks (the least recently saved goes first).
final class ReachabilityCache: @unchecked Sendable {
    static let maxNetworks = 8
    private let queue: DatabaseQueue
    private let io = DispatchQueue(label: "montana.client.reachability-cache")

    init(path: String) throws {
        queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS reachability (
                    network BLOB NOT NULL, node BLOB NOT NULL, label TEXT NOT NULL, host TEXT NOT NULL,
                    successes INTEGER NOT NULL, failures INTEGER NOT NULL, reached INTEGER NOT NULL, rtt_ms INTEGER,
                    saved INTEGER NOT NULL, PRIMARY KEY (network, node))
                """)
        }
    }

    static func networkKey(_ sourceGroup: String) -> [UInt8] {
        Array(SHA256.hash(data: Array("montana-network:\(sourceGroup)".utf8)).prefix(16))
    }

    func load(sourceGroup: String) -> [FrontReachability.Observation] {
        let key = Data(Self.networkKey(sourceGroup))
        return (try? queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM reachability WHERE network = ? ORDER BY node LIMIT ?",
                             arguments: [key, FrontReachability.maxFronts]).compactMap { row -> FrontReachability.Observation? in
                guard let node = try? NodeID(bytes: Array(row["node"] as Data)) else { return nil }
                var o = FrontReachability.Observation(node: node, label: row["label"], host: row["host"])
                o.successes = max(0, row["successes"] as Int)
                o.failures = max(0, row["failures"] as Int)
                o.lastReached = (row["reached"] as Int) != 0
                o.rttMilliseconds = (row["rtt_ms"] as Int?).map { UInt64(max(0, $0)) }
                return o
            }
        }) ?? []
    }

    /// Replaces what is saved for this network (in the background).
    func save(sourceGroup: String, _ observations: [FrontReachability.Observation]) {
        guard !sourceGroup.isEmpty else { return }
        let key = Data(Self.networkKey(sourceGroup))
        let rows = observations.prefix(FrontReachability.maxFronts)
        io.async { [queue] in
            try? queue.write { db in
                let seq = (try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(saved), 0) + 1 FROM reachability")) ?? 1
                try db.execute(sql: "DELETE FROM reachability WHERE network = ?", arguments: [key])
                for o in rows {
                    try db.execute(sql: """
                        INSERT INTO reachability (network, node, label, host, successes, failures, reached, rtt_ms, saved)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [key, Data(o.node.bytes), String(o.label.prefix(128)), String(o.host.prefix(300)),
                                         o.successes, o.failures, o.lastReached ? 1 : 0, o.rttMilliseconds.map { Int(clamping: $0) }, seq])
                }
                // Keep the networks saved most recently.
                try db.execute(sql: """
                    DELETE FROM reachability WHERE network NOT IN (
                        SELECT network FROM reachability GROUP BY network ORDER BY MAX(saved) DESC LIMIT ?)
                    """, arguments: [Self.maxNetworks])
            }
        }
    }

    /// Waits for pending saves (tests, shutdown).
    func flush() { io.sync {} }
}
