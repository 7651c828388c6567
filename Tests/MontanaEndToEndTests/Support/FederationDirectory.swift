import Foundation

/// The `/directory` JSON document of a node's admin port or a client's status port (the same
/// shape, `DirectoryView`), reduced to what the tests look at.
struct DirectoryDocument: CustomStringConvertible {
    struct Member {
        let nodeID: String
        let country: String
        let roles: [String]
        /// "corroborated" or "advisory".
        let corroboration: String
        let attesters: Int
        let contradicting: Int

        var isExit: Bool { roles.contains("exit") }
        var corroborated: Bool { corroboration == "corroborated" }
    }

    let members: [Member]
    let text: String

    init(json data: Data) throws {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = root["members"] as? [[String: Any]] else {
            throw E2EError("not a /directory document: \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
        members = list.map { m in
            Member(nodeID: m["node_id"] as? String ?? "", country: m["country"] as? String ?? "",
                   roles: m["roles"] as? [String] ?? [], corroboration: m["corroboration"] as? String ?? "",
                   attesters: m["attesters"] as? Int ?? 0, contradicting: m["contradicting"] as? Int ?? 0)
        }
        text = String(decoding: data, as: UTF8.self)
    }

    /// GET http://ADMIN/directory with the real curl.
    static func fetch(admin: String) throws -> DirectoryDocument {
        let result = try Curl.get("http://\(admin)/directory")
        guard result.succeeded else { throw E2EError("GET http://\(admin)/directory failed: \(result)") }
        return try DirectoryDocument(json: result.stdout)
    }

    func member(_ nodeID: String) -> Member? { members.first { $0.nodeID == nodeID } }
    func contains(_ nodeID: String) -> Bool { member(nodeID) != nil }

    /// One line per member, for failure messages.
    var description: String {
        members.map { "\($0.nodeID.prefix(12)) \($0.country) \($0.roles.joined(separator: "+")) \($0.corroboration) attesters=\($0.attesters) contradicting=\($0.contradicting)" }
            .joined(separator: "\n")
    }
}

extension PrometheusText {
    /// The value of `name{label="value"}` (summed over any other labels), 0 when not exposed
    /// (a counter appears with its first increment).
    func value(_ name: String, label: String, _ value: String) -> Double {
        samples.filter { $0.name == name && $0.labels.contains("\(label)=\"\(value)\"") }.reduce(0) { $0 + $1.value }
    }
}
