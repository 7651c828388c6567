import ArgumentParser
import Foundation
import Logging
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaWire

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run an alliance member (front and/or exit) from a TOML config.",
        discussion: """
        `montana node init DIR` writes keys and a commented node.toml to start from. \
        `montana node --config DIR/node.toml` runs the member until SIGINT/SIGTERM. \
        Every config error names the file, the key and the problem, and the node refuses to start.
        """,
        subcommands: [RunNode.self, InitNode.self, NodeLink.self, NodeDeregister.self],
        defaultSubcommand: RunNode.self
    )

    /// Loads the node's config for a subcommand; a config error (it names the file, the key and
    /// the problem) becomes the command's usage error.
    static func loadConfiguration(_ path: String) throws -> NodeConfiguration {
        do { return try NodeConfiguration.load(path: path) } catch { throw ValidationError("\(error)") }
    }
}

struct RunNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the member described by a config file (the default).")

    @Option(name: .shortAndLong, help: "The node's TOML configuration file.")
    var config: String

    @Option(help: "Override the config's log level (trace, debug, info, notice, warning, error).")
    var logLevel: String?

    func run() async throws {
        let configuration = try NodeCommand.loadConfiguration(config)
        let level = logLevel.flatMap(Logger.Level.init(rawValue:)) ?? configuration.logLevel
        let logger = LogSetup.bootstrap(level, label: "montana.node")
        for warning in configuration.warnings { logger.warning("\(warning)") }
        let node = Node(configuration: configuration, logger: logger)
        do {
            _ = try await node.start()
        } catch {
            await node.stop()
            throw ValidationError("\(config): cannot start: \(error)")
        }
        ParentWatch.startIfAsked()
        let signal = await TerminationSignal.wait()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        await node.stop()
    }
}

struct InitNode: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create keys and a commented node.toml in a directory.")

    @Argument(help: "Directory for the keys and config (created if missing).")
    var directory: String

    @Option(help: "The exit's country (ISO 3166-1 alpha-2).")
    var country = "DE"

    @Option(help: "Roles, comma-separated: front, exit.")
    var roles = "front,exit"

    @Option(help: "Transit listen address (host:port).")
    var transit = "0.0.0.0:7443"

    @Option(help: "The address others dial (public IP or name).")
    var publicHost: String?

    func run() throws {
        var nodeRoles = NodeRoles()
        for r in roles.split(separator: ",") {
            switch r.trimmingCharacters(in: .whitespaces) {
            case "front": nodeRoles.insert(.front)
            case "exit": nodeRoles.insert(.exit)
            default: throw ValidationError("--roles: unknown role \"\(r)\" (use front, exit)")
            }
        }
        guard CountryCode.isAssigned(country.uppercased()) else { throw ValidationError("--country: \(country) is not an assigned ISO 3166-1 alpha-2 code") }
        let transitAddress: HostPort
        do { transitAddress = try HostPort(parsing: transit) } catch { throw ValidationError("--transit: \(error)") }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = { (name: String) in (directory as NSString).appendingPathComponent(name) }
        let configPath = path("node.toml")
        guard !FileManager.default.fileExists(atPath: configPath) else { throw ValidationError("\(configPath) already exists; not overwriting") }
        let identity = try IdentityKey.generate()
        let kem = try KEMKey.generate()
        try KeyFile(kind: .nodeIdentity, seed: identity.seed).write(to: path("identity.key"))
        try KeyFile(kind: .nodeKEM, seed: kem.seed).write(to: path("kem.key"))
        let text = NodeConfiguration.template(identityKeyPath: "identity.key", kemKeyPath: "kem.key", nodeID: identity.nodeID,
                                              kemPublicKey: kem.publicKey, roles: nodeRoles, country: country.uppercased(),
                                              transit: transitAddress, publicHost: publicHost)
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        try PublicKeyFile.node(identity: identity, kem: kem).write(to: path("node.pub.json"))
        print("node_id: \(identity.nodeID.hex)")
        print("wrote \(path("identity.key")) (0600), \(path("kem.key")) (0600), \(path("node.pub.json")), \(configPath)")
        print("to join an alliance: have its operator run `montana alliance endorse --node \(path("node.pub.json")) ...`,")
        print("  then set node.alliance, node.endorsement and [directory] bootstrap in \(configPath)")
        print("next: edit \(configPath) (peers, exit policy), then: montana node --config \(configPath)")
    }
}

struct NodeLink: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Print this node's montana:// member link (for bootstrap lists and subscriptions).")

    @Option(name: .shortAndLong, help: "The node's TOML configuration file.")
    var config: String

    func run() throws {
        let configuration = try NodeCommand.loadConfiguration(config)
        guard let settings = configuration.directory else {
            throw ValidationError("\(config): node.alliance names no alliance.json; a member link names the alliance")
        }
        guard let endpoint = configuration.listen.publicEndpoint, let port = UInt16(exactly: endpoint.port) else {
            throw ValidationError("\(config): listen.public_host is not set, so there is no address to put in the link")
        }
        let link = MemberLink(alliance: settings.alliance.uuidBytes, host: endpoint.host, port: port, nodeID: configuration.nodeID,
                              kemPublicKey: configuration.kem.publicKey, profile: 0, keyMode: .universal, ownT1: nil,
                              label: configuration.operatorLabel)
        print(link.text)
    }
}

struct NodeDeregister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deregister",
        abstract: "Withdraw this node from the alliance directory (members drop it; a running node stops re-signing).")

    @Option(name: .shortAndLong, help: "The node's TOML configuration file.")
    var config: String

    func run() async throws {
        let configuration = try NodeCommand.loadConfiguration(config)
        let result: (reached: [String], failed: [String])
        do { result = try await DirectoryPush.deregister(configuration) } catch { throw ValidationError("\(error)") }
        for r in result.reached { print("withdrawal accepted by \(r)") }
        for f in result.failed { print("could not reach \(f)") }
        if result.reached.isEmpty {
            throw ValidationError("no member took the withdrawal; it is kept and published by the node when it runs again")
        }
        print("withdrawn: members pass it on; clients drop this node at their next directory refresh. Disable the exit role to stop serving.")
    }
}
