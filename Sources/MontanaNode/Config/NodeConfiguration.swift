import Logging
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire

/// A member node's configuration (`node.toml`), validated and resolved: keys loaded, addresses
/// parsed, the exit policy compiled. Loading either succeeds completely or names the first
/// problem; things that work but are probably unintended come back as `warnings`.
public struct NodeConfiguration: Sendable {
    /// The config file as given; errors and warnings name it.
    public var file: String
    public var identityKeyPath: String
    public var kemKeyPath: String
    public var identity: IdentityKey
    public var kem: KEMKey
    public var roles: NodeRoles
    /// Where this node's exit traffic leaves from; required for exits.
    public var country: String?
    public var capacity: EgressDirectoryEntry.CapacityClass
    public var operatorLabel: String?
    /// Alliance UUID that prefaces must carry; nil admits prefaces without one.
    public var alliance: [UInt8]?
    public var listen: NodeListen
    public var limits: NodeLimits
    /// `[admission]`, with the circuit and handshake numbers of `[limits]` folded in.
    public var admission = AdmissionLimits()
    /// Present exactly when `roles` contains `.exit`.
    public var exit: ExitSettings?
    /// The exit's stub resolver (`[dns]`); defaults when the section is absent.
    public var dns = DNSSettings()
    public var peers: [PeerConfiguration]
    /// The alliance, endorsement and `[directory]`; nil when `node.alliance` names no alliance.json.
    public var directory: DirectorySettings?
    public var logLevel: Logger.Level
    /// SQLite file for the exit's per-account totals (`node.state`, default `state.sqlite` beside
    /// the config file).
    public var statePath: String
    /// Settings that load but are probably not what the operator meant; print them at startup.
    public var warnings: [String]
    /// `[carriers.obfs4]` (T3); nil when absent or disabled.
    public var obfs4: Obfs4Settings?
    /// `[carriers.ws]` (T2); nil when absent or disabled.
    public var webSocket: WebSocketSettings?
    /// `[carriers.tls]` (T1); nil when absent or disabled.
    public var tls: TLSCarrierSettings?
    /// Carrier endpoints known only at run time (T3's cert), published in the record.
    public var publishedCarriers = PublishedCarriers()

    public var nodeID: NodeID { identity.nodeID }

    public static let operatorLabelMaxBytes = 64

    static let sections = ["node", "listen", "limits", "exit", "peers", "log", "dns", "admission", "directory", "carriers"]
    static let nodeKeys = ["identity_key", "kem_key", "roles", "country", "capacity", "operator", "alliance", "state", "endorsement"]

    /// Reads `path`; relative key paths resolve against its directory.
    public static func load(path: String) throws(ConfigurationError) -> NodeConfiguration {
        try resolve(ConfigSection.load(path: path))
    }

    /// Parses config text; `file` names it in errors, `baseDirectory` anchors relative paths.
    public static func parse(_ text: String, file: String = "node.toml", baseDirectory: String = ".") throws(ConfigurationError) -> NodeConfiguration {
        try resolve(ConfigSection.parse(text, file: file, baseDirectory: baseDirectory))
    }

    private static func resolve(_ root: ConfigSection) throws(ConfigurationError) -> NodeConfiguration {
        try root.allowOnly(sections)
        guard let node = try root.section("node") else { throw .missingKey(file: root.file, key: "node") }
        try node.allowOnly(nodeKeys)
        var warnings: [String] = []

        guard let identityPath = try node.path("identity_key") else { throw .missingKey(file: root.file, key: "node.identity_key") }
        guard let kemPath = try node.path("kem_key") else { throw .missingKey(file: root.file, key: "node.kem_key") }
        let identity: IdentityKey
        do { identity = try KeyFile.loadIdentity(identityPath) } catch { throw node.invalid("identity_key", "\(error)") }
        let kem: KEMKey
        do { kem = try KeyFile.loadKEM(kemPath) } catch { throw node.invalid("kem_key", "\(error)") }

        guard let roles = try node.roles("roles") else { throw .missingKey(file: root.file, key: "node.roles") }
        let country = try node.country("country")
        if roles.contains(.exit) && country == nil {
            throw .missingKey(file: root.file, key: "node.country")
        }
        let capacity = try capacityClass(node)
        let operatorLabel = try operatorLabel(node)
        let alliance = try SharedSettings.alliance(node)
        let statePath = try node.path("state") ?? node.resolve("state.sqlite")

        let listen = try NodeListen.parse(root.section("listen"), warnings: &warnings)
        let limits = try NodeLimits.parse(root.section("limits"))
        let admission = try AdmissionSettings.parse(root.section("admission"), limits: limits)
        let directory = try DirectorySettings.parse(node: node, section: root.section("directory"), nodeID: identity.nodeID,
                                                    operatorLabel: operatorLabel, warnings: &warnings)
        if directory != nil && country == nil {
            throw node.invalid("country", "required in an alliance: the directory record names the node's country (also for fronts)")
        }
        let exitSection = try root.section("exit")
        // Validate the section either way so a typo is caught before the role is switched on.
        var exit: ExitSettings? = try ExitSettings.parse(exitSection, allianceIssuers: directory?.alliance.passIssuerKeys ?? [],
                                                         warnings: &warnings)
        if !roles.contains(.exit) {
            if exitSection != nil {
                warnings.append("\(root.file): [exit] is ignored because node.roles does not include \"exit\"")
            }
            exit = nil
        }
        let peers = try PeerConfiguration.parseList(root, name: "peers", ownID: identity.nodeID)
        let dns = try DNSSettings.parse(root.section("dns"))
        let logLevel = try SharedSettings.logLevel(root)

        var configuration = NodeConfiguration(file: root.file, identityKeyPath: identityPath, kemKeyPath: kemPath, identity: identity, kem: kem,
                                 roles: roles, country: country, capacity: capacity, operatorLabel: operatorLabel,
                                 alliance: alliance, listen: listen, limits: limits, exit: exit, peers: peers,
                                 logLevel: logLevel, statePath: statePath, warnings: warnings)
        configuration.dns = dns
        configuration.directory = directory
        configuration.admission = admission
        configuration.obfs4 = try Obfs4Settings.parse(root.section("carriers"), statePath: statePath, transit: listen.transit)
        configuration.webSocket = try WebSocketSettings.parse(root.section("carriers"), transit: listen.transit)
        configuration.tls = try TLSCarrierSettings.parse(root.section("carriers"), transit: listen.transit)
        return configuration
    }

    private static func capacityClass(_ node: ConfigSection) throws(ConfigurationError) -> EgressDirectoryEntry.CapacityClass {
        switch try node.string("capacity") ?? "standard" {
        case "best-effort": return .bestEffort
        case "standard": return .standard
        case "high": return .high
        case let other: throw node.invalid("capacity", "\"\(other)\" is not one of best-effort, standard, high")
        }
    }

    private static func operatorLabel(_ node: ConfigSection) throws(ConfigurationError) -> String? {
        guard let label = try node.string("operator"), !label.isEmpty else { return nil }
        guard label.utf8.count <= operatorLabelMaxBytes else {
            throw node.invalid("operator", "\(label.utf8.count) bytes; at most \(operatorLabelMaxBytes) (it is published in the directory)")
        }
        return label
    }
}
