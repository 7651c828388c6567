import Foundation

/// The file `montana demo --status-json PATH` writes once everything is up.
struct DemoStatus: Decodable {
    struct Address: Decodable {
        let host: String
        let port: Int
    }

    struct City: Decodable {
        let name: String
        let nodeID: String
        let kemPK: String
        let identityPK: String
        let roles: [String]
        let country: String
        let transit: Address
        let admin: Address
        let pid: Int32
        let config: String
        let log: String
        let exitAdmission: String?
        let exitPolicy: String?

        enum CodingKeys: String, CodingKey {
            case name, roles, country, transit, admin, pid, config, log
            case nodeID = "node_id", kemPK = "kem_pk", identityPK = "identity_pk"
            case exitAdmission = "exit_admission", exitPolicy = "exit_policy"
        }

        var isExit: Bool { roles.contains("exit") }
        var isFront: Bool { roles.contains("front") }
        var metricsURL: String { "http://\(admin.host):\(admin.port)/metrics" }
    }

    struct Client: Decodable {
        let socks: Address
        let http: Address
        let accountID: String
        let accountKey: String

        enum CodingKeys: String, CodingKey {
            case socks, http
            case accountID = "account_id", accountKey = "account_key"
        }
    }

    struct Site: Decodable {
        let url: String
        let port: Int
    }

    let pid: Int32
    let directory: String
    let cities: [City]
    let client: Client
    let site: Site

    func city(_ name: String) throws -> City {
        guard let city = cities.first(where: { $0.name == name }) else {
            throw E2EError("the demo status has no city \(name) (has \(cities.map(\.name)))")
        }
        return city
    }

    /// The exit city for a country code such as "DE".
    func exit(country: String) throws -> City {
        guard let city = cities.first(where: { $0.isExit && $0.country == country }) else {
            throw E2EError("the demo status has no exit in \(country)")
        }
        return city
    }

    var exits: [City] { cities.filter(\.isExit) }
}
