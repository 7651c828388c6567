import ArgumentParser
import Foundation
import MontanaNode

/// `montana status --admin ADDR [--json]`: a node's or a client's status port as a table.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running node's or client's status (its admin/status port).")

    @Option(help: "The admin/status address (host:port), e.g. 127.0.0.1:9090.")
    var admin: String

    @Flag(help: "Print the JSON document as it is.")
    var json = false

    func run() async throws {
        let doc = try await AdminDocument.fetch(admin: admin, path: "/status")
        if json { return try AdminDocument.printJSON(doc) }
        if doc["role"] as? String == "client" { printClient(doc) } else { printNode(doc) }
    }

    private func printClient(_ doc: [String: Any]) {
        print("client" + ((doc["subscription"] as? String).map { "  (subscription: \($0))" } ?? ""))
        if let d = doc["directory"] as? [String: Any] {
            let error = (d["error"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            print("directory: \(d["members"] ?? 0) members via front \(d["front"] ?? "-"), last refresh \(Table.ago(d["last_refresh"]))"
                  + (error.map { "  (last error: \($0))" } ?? ""))
        }
        if let p = doc["pass"] as? [String: Any] {
            let problem = (p["problem"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            let ended = (p["not_after"] as? Int).map { $0 < Int(Date().timeIntervalSince1970) } ?? false
            print("pass: \(ended ? "expired at" : "valid until") \(Table.date(p["not_after"])), quota \(Table.bytes(p["quota_bytes"]))"
                  + (problem.map { "  PROBLEM: \($0)" } ?? ""))
        }
        print("advisory exits allowed: \(doc["advisory_exits"] as? Bool ?? false)")
        let circuits = doc["circuits"] as? [[String: Any]] ?? []
        if circuits.isEmpty {
            print("no open circuits")
        } else {
            Table.print(["exit", "country", "front", "carrier", "reserve", "streams", "up", "down", "age", "resumed"], circuits.map { c in
                ["\(c["exit"] ?? "")", "\(c["exit_country"] ?? "")", "\(c["front"] ?? "")", "\(c["carrier"] ?? "t0")", "\(c["reserve"] ?? "-")",
                 "\(c["streams_active"] ?? 0)/\(c["streams_opened"] ?? 0)", Table.bytes(c["bytes_up"]), Table.bytes(c["bytes_down"]),
                 "\(c["age_seconds"] ?? 0)s",
                 (c["resumptions"] as? Int).map { $0 == 0 ? "-" : "\($0)× (last stall \(c["last_stall_ms"] ?? 0) ms)" } ?? "-"]
            })
        }
        let events = ((doc["steering"] as? [String: Any])?["events"] as? [[String: Any]]) ?? []
        if !events.isEmpty {
            print("")
            print("recent re-steers and resumptions (newest last):")
            Table.print(["when", "event", "exit", "from", "to", "stall", "reason"], events.suffix(12).map { e in
                ["\(e["seconds_ago"] ?? 0)s ago", "\(e["kind"] ?? "")", "\(e["exit"] ?? "")", "\(e["from_front"] ?? "")", "\(e["to_front"] ?? "")",
                 (e["stall_ms"] as? Int).map { "\($0) ms" } ?? "-", String("\(e["reason"] ?? "")".prefix(70))]
            })
        }
        if let r = doc["reachability"] as? [String: Any] {
            let v = r["vantage"] as? [String: Any] ?? [:]
            let group = v["source_group"] as? String ?? ""
            let vantage = group.isEmpty ? "" : "\(group), country \(v["country"] ?? "ZZ")"
            let fronts = r["fronts"] as? [[String: Any]] ?? []
            print("")
            print("fronts from this network" + (vantage.isEmpty ? " (vantage not reported yet)" : " (seen from \(vantage))") + ":")
            if fronts.isEmpty {
                print("  none tried yet")
            } else {
                Table.print(["front", "endpoint", "profile", "state", "rtt", "ok", "failed", "last error"], fronts.map { f in
                    ["\(f["front"] ?? "")", "\(f["host"] ?? "")", "\(f["profile"] ?? "")", "\(f["state"] ?? "")",
                     (f["rtt_ms"] as? Int).map { "\($0) ms" } ?? "-", "\(f["successes"] ?? 0)", "\(f["failures"] ?? 0)",
                     String("\(f["last_error"] ?? "")".prefix(60))]
                })
            }
        }
        if let map = (doc["reachability"] as? [String: Any])?["map"] as? [[String: Any]], !map.isEmpty {
            print("")
            print("the alliance's map for this vantage (actionable with reports from ≥ 3 networks):")
            Table.print(["front", "profile", "state", "networks"], map.map { m in
                ["\(m["label"] ?? "")", "\(m["profile"] ?? "")", "\(m["state"] ?? "")", "\(m["sources"] ?? 0)"]
            })
        }
        if let failures = doc["last_failures"] as? [String: String], !failures.isEmpty {
            print("last failures:")
            for (exit, why) in failures.sorted(by: { $0.key < $1.key }) { print("  \(exit): \(why)") }
        }
    }

    private func printNode(_ doc: [String: Any]) {
        print("node \(doc["node_id"] ?? "?")  roles \(doc["roles"] ?? "?")  country \(doc["country"] ?? "-")")
        print("circuits active \(doc["circuits_active"] ?? 0), discarders \(doc["discarders_active"] ?? 0)")
        if let d = doc["directory"] as? [String: Any] {
            print("directory (\(d["alliance"] ?? "?")): \(d["members"] ?? 0) members, \(d["exits"] ?? 0) exits "
                  + "(\(d["corroborated_exits"] ?? 0) corroborated), \(d["records"] ?? 0) records, \(d["attestations"] ?? 0) attestations"
                  + ((d["withdrawn"] as? Bool ?? false) ? ", WITHDRAWN" : ""))
        }
        if let r = doc["resumption"] as? [String: Any] {
            print("resumption: \(r["resumable_sessions"] ?? 0) resumable sessions, \(r["detached"] ?? 0) waiting for a carrier "
                  + "(\(Table.bytes(r["detached_bytes"])) kept, held \(r["hold_seconds"] ?? 0) s), \(r["resumed"] ?? 0) resumed, "
                  + "\(r["refused"] ?? 0) refused, \(r["evicted"] ?? 0) evicted")
        }
        if let e = doc["egress"] as? [String: Any] {
            print("egress: \(e["accounts"] ?? 0) accounts, \(e["streams"] ?? 0) streams, up \(Table.bytes(e["bytes_up"])), down \(Table.bytes(e["bytes_down"])), refusals \(e["refusals"] ?? 0)")
        }
    }
}

/// `montana directory show --admin ADDR [--country XX] [--json]`.
struct DirectoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "directory", abstract: "Inspect the alliance directory as a node or client sees it.",
        subcommands: [DirectoryShow.self], defaultSubcommand: DirectoryShow.self)
}

struct DirectoryShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "List the members a node or client knows.")

    @Option(help: "The admin/status address (host:port).")
    var admin: String

    @Option(help: "Only members in this country (ISO 3166-1 alpha-2).")
    var country: String?

    @Flag(help: "Print JSON (the /directory document, filtered).")
    var json = false

    func run() async throws {
        var doc = try await AdminDocument.fetch(admin: admin, path: "/directory")
        var members = doc["members"] as? [[String: Any]] ?? []
        if let country {
            members = members.filter { ($0["country"] as? String) == country.uppercased() }
            doc["members"] = members
        }
        if json {
            try AdminDocument.printJSON(doc)
            return
        }
        let alliance = doc["alliance"] as? [String: Any] ?? [:]
        print("alliance \(alliance["name"] ?? "?") (\(alliance["uuid"] ?? "?"))" + ((alliance["open"] as? Bool ?? false) ? "  OPEN: records need no endorsement" : ""))
        Table.print(["node", "country", "roles", "operator", "endpoint", "country check", "attesters", "refreshed"], members.map { m in
            let endpoint = (m["endpoints"] as? [[String: Any]])?.first.map { "\($0["host"] ?? ""):\($0["port"] ?? "")" } ?? "-"
            let roles = (m["roles"] as? [String])?.joined(separator: "+") ?? ""
            return [String(("\(m["node_id"] ?? "")").prefix(12)), "\(m["country"] ?? "")", roles, "\(m["operator"] ?? "")", endpoint,
                    "\(m["corroboration"] ?? "")", "\(m["attesters"] ?? 0)", Table.ago(m["last_refresh"])]
        })
        if let countries = doc["countries"] as? [String: [String: Int]], !countries.isEmpty {
            print("")
            print("exit countries: " + countries.sorted { $0.key < $1.key }.map { cc, n in
                "\(cc) \(n["exits"] ?? 0) exit(s), \(n["corroborated"] ?? 0) corroborated"
            }.joined(separator: "; "))
        }
        if let rejected = doc["rejected"] as? [String: Int], !rejected.isEmpty {
            print("rejected: " + rejected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }
}

/// Plain-text tables for the status commands.
enum Table {
    static func print(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
        }
        Swift.print(line(header))
        for row in rows { Swift.print(line(row)) }
    }

    static func bytes(_ value: Any?) -> String {
        let n = (value as? Int) ?? 0
        if n == 0 { return "0" }
        if n >= 1 << 30 { return String(format: "%.2f GiB", Double(n) / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", Double(n) / Double(1 << 10)) }
        return "\(n) B"
    }

    static func ago(_ value: Any?) -> String {
        guard let t = value as? Int, t > 0 else { return "never" }
        let now = Int(Date().timeIntervalSince1970)
        return now >= t ? "\(now - t)s ago" : "just now"
    }

    static func date(_ value: Any?) -> String {
        guard let t = value as? Int else { return "?" }
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(t)))
    }
}

/// Reading a node's or client's admin documents for the `status`, `directory show` and
/// `reachability show` commands.
enum AdminDocument {
    static func fetch(admin: String, path: String) async throws -> [String: Any] {
        let address: HostPort
        do { address = try HostPort(parsing: admin) } catch { throw ValidationError("--admin: \(error)") }
        do { return try await AdminClient.get(address, path: path) } catch { throw ValidationError("\(error)") }
    }

    static func printJSON(_ doc: Any) throws {
        print(String(decoding: try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
    }
}
