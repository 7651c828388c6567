import Foundation

/// What the attacks need from `montana demo --status-json FILE`.
struct DemoTarget: Decodable {
    struct Address: Decodable {
        let host: String
        let port: Int
    }

    struct City: Decodable {
        let name: String
        let nodeID: String
        let kemPK: String
        let roles: [String]
        let country: String
        let transit: Address
        let admin: Address
        let pid: Int32

        enum CodingKeys: String, CodingKey {
            case name, roles, country, transit, admin, pid
            case nodeID = "node_id", kemPK = "kem_pk"
        }

        var isExit: Bool { roles.contains("exit") }
    }

    struct Client: Decodable {
        let socks: Address
        let http: Address
    }

    struct Site: Decodable {
        let url: String
        let port: Int
    }

    let pid: Int32
    let cities: [City]
    let client: Client
    let site: Site

    static func load(_ path: String) throws -> DemoTarget {
        guard let data = FileManager.default.contents(atPath: path) else { throw AbuseError("cannot read \(path)") }
        return try JSONDecoder().decode(DemoTarget.self, from: data)
    }

    /// The front-only city (warsaw in the demo): a node whose only sessions are control sessions.
    var frontOnly: City? { cities.first { !$0.isExit } }
    var exits: [City] { cities.filter(\.isExit) }
}

struct AbuseError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
