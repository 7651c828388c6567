import MontanaWire
/// The file `montana demo --status-json PATH` writes once everything is up, as its readers
/// (scripts, `montana-abuse`, the end-to-end tests) decode it.
public struct DemoStatusFile: Decodable, Sendable {
    public struct Address: Decodable, Sendable {
        public let host: String
        public let port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public struct City: Decodable, Sendable {
        public let name: String
        public let nodeID: String
        public let kemPK: String
        public let identityPK: String
        public let roles: [String]
        public let country: String
        public let transit: Address
        public let admin: Address
        public let pid: Int32
        public let config: String
        public let log: String
        public let exitAdmission: String?
        public let exitPolicy: String?
        public var operatorLabel: String? = nil
        public var link: String? = nil
        public var endorsement: String? = nil
        /// The alliance UUID (hex) prefaces to this city must carry; nil for a node without one.
        public var alliance: String? = nil
        /// The city's T1 listener (`[carriers.tls]`, universal key), relaying to the demo's cover site.
        public var t1: Address? = nil
        /// The carriers the city offers ("t0", "t1", "t2"); nil in files from before carriers.
        public var carriers: [String]? = nil

        /// The UUID's 16 bytes, for `RelayExtension.alliance`.
        public var allianceUUID: [UInt8]? { alliance.flatMap { $0.isEmpty ? nil : Hex.decode($0) } }

        enum CodingKeys: String, CodingKey {
            case name, roles, country, transit, admin, pid, config, log, link, endorsement, alliance, t1, carriers
            case operatorLabel = "operator"
            case nodeID = "node_id", kemPK = "kem_pk", identityPK = "identity_pk"
            case exitAdmission = "exit_admission", exitPolicy = "exit_policy"
        }

        /// For a node started outside a demo (tests describe it in the same shape).
        public init(name: String, nodeID: String, kemPK: String, identityPK: String, roles: [String], country: String,
                    transit: Address, admin: Address, pid: Int32, config: String, log: String,
                    exitAdmission: String?, exitPolicy: String?) {
            self.name = name
            self.nodeID = nodeID
            self.kemPK = kemPK
            self.identityPK = identityPK
            self.roles = roles
            self.country = country
            self.transit = transit
            self.admin = admin
            self.pid = pid
            self.config = config
            self.log = log
            self.exitAdmission = exitAdmission
            self.exitPolicy = exitPolicy
        }

        public var isExit: Bool { roles.contains("exit") }
        public var isFront: Bool { roles.contains("front") }
    }

    public struct Client: Decodable, Sendable {
        public let socks: Address
        public let http: Address
        public let accountID: String
        public let accountKey: String
        /// The client's status port (`/status`, `/directory`).
        public let admin: Address?
        public let config: String?

        enum CodingKeys: String, CodingKey {
            case socks, http, admin, config
            case accountID = "account_id", accountKey = "account_key"
        }
    }

    public struct Site: Decodable, Sendable {
        public let url: String
        public let port: Int
    }

    /// The HTTPS site the cities' T1 fronts relay to.
    public struct Cover: Decodable, Sendable {
        public let name: String
        public let host: String
        public let port: Int
    }

    /// The demo's alliance files.
    public struct AllianceFiles: Decodable, Sendable {
        public let file: String
        public let secret: String
        public let uuid: String
        public let name: String
        public let subscription: String
        public let geoip: String
    }

    /// The demo's T2: "running" (its city, nginx's address and pid, the CA the client trusts) or
    /// "skipped" (`reason`: "nginx not installed", "off (--no-t2)", …).
    public struct T2: Decodable, Sendable {
        public struct Nginx: Decodable, Sendable {
            public let host: String
            public let port: Int
            public let pid: Int32
        }
        public let state: String
        public let reason: String?
        public let city: String?
        public let ca: String?
        public let hostName: String?
        public let nginx: Nginx?
        public let listen: String?

        enum CodingKeys: String, CodingKey {
            case state, reason, city, ca, nginx, listen
            case hostName = "host_name"
        }
    }

    public let pid: Int32
    /// nil in files from before T2.
    public let t2: T2?
    public let directory: String
    public let alliance: AllianceFiles?
    public let cities: [City]
    public let client: Client
    public let site: Site
    public var cover: Cover? = nil

    public var exits: [City] { cities.filter(\.isExit) }
}
