import ArgumentParser
import Foundation
import Logging
import MontanaCrypto
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
        subcommands: [RunNode.self, InitNode.self],
        defaultSubcommand: RunNode.self
    )
}

struct RunNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the member described by a config file (the default).")

    @Option(name: .shortAndLong, help: "The node's TOML configuration file.")
    var config: String

    @Option(help: "Override the config's log level (trace, debug, info, notice, warning, error).")
    var logLevel: String?

    func run() async throws {
        let configuration: NodeConfiguration
        do {
            configuration = try NodeConfiguration.load(path: config)
        } catch {
            throw ValidationError("\(error)")
        }
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
        print("node_id: \(identity.nodeID.hex)")
        print("wrote \(path("identity.key")) (0600), \(path("kem.key")) (0600), \(configPath)")
        print("next: edit \(configPath) (peers, exit policy), then: montana node --config \(configPath)")
    }
}
