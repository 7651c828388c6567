import ArgumentParser
import Foundation
import Logging
import MontanaCrypto
import MontanaNode

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Run the local SOCKS5/HTTP proxy that routes apps through the alliance.",
        discussion: """
        Apps use socks5h://127.0.0.1:1080 (names are resolved at the exit, never locally) or the HTTP \
        proxy. The proxy username picks the exit per connection: country-de, node-<hex prefix>, auto.
        """,
        subcommands: [RunClient.self, InitClient.self],
        defaultSubcommand: RunClient.self
    )
}

struct RunClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the client from a config file (the default).")

    @Option(name: .shortAndLong, help: "The client's TOML configuration file.")
    var config: String

    @Option(help: "Default exit country for connections without a username (overrides the config).")
    var country: String?

    @Flag(help: "Let an exit be its own front when no other front is reachable (that exit then sees your address; overrides exit_as_front).")
    var exitAsFront = false

    @Option(help: "Local IPv4/IPv6 address to connect to fronts from, e.g. 127.0.1.1 (overrides source).")
    var source: String?

    func run() async throws {
        var configuration: ClientConfiguration
        do {
            configuration = try ClientConfiguration.load(path: config)
        } catch {
            throw ValidationError("\(error)")
        }
        if let country {
            do { configuration.defaultExit = try .parse(username: "country-\(country)") } catch { throw ValidationError("--country: \(error)") }
        }
        if exitAsFront { configuration.exitAsFront = true }
        if let source {
            do { configuration.source = try ClientSourceAddress(parsing: source) } catch { throw ValidationError("--source: \(error)") }
        }
        let logger = LogSetup.bootstrap(configuration.logLevel, label: "montana.client")
        for warning in configuration.warnings { logger.warning("\(warning)") }
        do { try ClientRuntime.checkSource(configuration) } catch { throw ValidationError("\(error)") }
        let server = try await ClientRuntime.start(configuration, logger: logger)
        for (kind, address) in server.bound { logger.info("listening", metadata: ["proxy": "\(kind.rawValue)", "address": "\(address)"]) }
        if let source = configuration.source { logger.info("connecting to fronts from \(source)") }
        _ = await TerminationSignal.wait()
        await server.shutdown()
    }
}

struct InitClient: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create an account key and a commented client.toml.")

    @Argument(help: "Directory for the key and config.")
    var directory: String

    func run() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = { (name: String) in (directory as NSString).appendingPathComponent(name) }
        let configPath = path("client.toml")
        guard !FileManager.default.fileExists(atPath: configPath) else { throw ValidationError("\(configPath) already exists; not overwriting") }
        let account = try IdentityKey.generate()
        try KeyFile(kind: .account, seed: account.seed).write(to: path("account.key"))
        try ClientConfiguration.template(accountKeyPath: "account.key").write(toFile: configPath, atomically: true, encoding: .utf8)
        print("account_id: \(account.accountID.map { String(format: "%02x", $0) }.joined())")
        print("wrote \(path("account.key")) (0600), \(configPath); add the alliance's members to it, then: montana client --config \(configPath)")
    }
}
