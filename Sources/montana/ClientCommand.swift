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
    var config: String?

    @Option(help: "A subscription file or http:// URL (overrides the config's subscription; enough on its own).")
    var subscription: String?

    @Option(help: "Without --config: where the account key and directory cache live.")
    var data: String = (NSHomeDirectory() as NSString).appendingPathComponent(".montana")

    @Option(help: "Loopback address of the status port (/status, /directory), e.g. 127.0.0.1:9090.")
    var admin: String?

    @Flag(help: "Allow exits whose country is not corroborated by 2 independent members.")
    var advisoryExits = false

    @Option(help: "SOCKS5 listen address, e.g. 127.0.0.1:1080 (\"\" turns it off; overrides socks).")
    var socks: String?

    @Option(help: "HTTP proxy listen address, e.g. 127.0.0.1:8080 (overrides http).")
    var http: String?

    @Option(help: "Mixed SOCKS5/HTTP listen address (overrides mixed).")
    var mixed: String?

    @Option(help: "Default exit country for connections without a username (overrides the config).")
    var country: String?

    @Flag(help: "Let an exit be its own front when no other front is reachable (that exit then sees your address; overrides exit_as_front).")
    var exitAsFront = false

    @Option(help: "Local IPv4/IPv6 address to connect to fronts from, e.g. 127.0.1.1 (overrides source).")
    var source: String?

    @Option(help: "A GeoIP database (.mmdb or CIDR,CC[,ASN] csv) naming this client's vantage country and AS (overrides geoip).")
    var geoip: String?

    func run() async throws {
        var configuration: ClientConfiguration
        do {
            if let config {
                configuration = try ClientConfiguration.load(path: config)
            } else if let subscription {
                configuration = try Self.standalone(subscription: subscription, data: data)
            } else {
                throw ValidationError("give --config FILE or --subscription FILE|URL")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
        if let subscription {
            configuration.subscription = subscription.hasPrefix("http") ? subscription
                : (subscription as NSString).expandingTildeInPath
        }
        if advisoryExits { configuration.advisoryExits = true }
        do {
            if let socks { configuration.socks = socks.isEmpty ? nil : try HostPort(parsing: socks) }
            if let http { configuration.http = http.isEmpty ? nil : try HostPort(parsing: http) }
            if let mixed { configuration.mixed = mixed.isEmpty ? nil : try HostPort(parsing: mixed) }
        } catch {
            throw ValidationError("--socks/--http/--mixed: \(error)")
        }
        if configuration.socks == nil && configuration.http == nil && configuration.mixed == nil {
            throw ValidationError("every listener (--socks, --http, --mixed) is off; enable at least one")
        }
        if let admin {
            do { configuration.admin = try HostPort(parsing: admin) } catch { throw ValidationError("--admin: \(error)") }
        }
        if let country {
            do { configuration.defaultExit = try .parse(username: "country-\(country)") } catch { throw ValidationError("--country: \(error)") }
        }
        if exitAsFront { configuration.exitAsFront = true }
        if let geoip { configuration.geoipPath = geoip }
        if let source {
            do { configuration.source = try ClientSourceAddress(parsing: source) } catch { throw ValidationError("--source: \(error)") }
        }
        let logger = LogSetup.bootstrap(configuration.logLevel, label: "montana.client")
        for warning in configuration.warnings { logger.warning("\(warning)") }
        do { try ClientRuntime.checkSource(configuration) } catch { throw ValidationError("\(error)") }
        let runtime: ClientRuntime
        do {
            runtime = try await ClientRuntime.start(configuration, logger: logger)
        } catch let error as ClientRuntimeError {
            throw ValidationError("\(error)")
        }
        for (kind, address) in runtime.proxy.bound { logger.info("listening", metadata: ["proxy": "\(kind.rawValue)", "address": "\(address)"]) }
        if let port = runtime.adminPort { logger.info("status port", metadata: ["address": "\(configuration.admin?.host ?? "127.0.0.1"):\(port)"]) }
        if let title = runtime.subscriptionTitle { logger.info("subscription", metadata: ["title": "\(title)"]) }
        if let source = configuration.source { logger.info("connecting to fronts from \(source)") }
        _ = await TerminationSignal.wait()
        await runtime.shutdown()
    }

    /// A client from a subscription alone: an account key (created once, 0600) and the directory
    /// cache in `data`.
    static func standalone(subscription: String, data: String) throws -> ClientConfiguration {
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let keyPath = (data as NSString).appendingPathComponent("account.key")
        if !FileManager.default.fileExists(atPath: keyPath) {
            try KeyFile(kind: .account, seed: try IdentityKey.generate().seed).write(to: keyPath)
        }
        let text = "[client]\naccount_key = \"account.key\"\nsubscription = \"\(subscription)\"\n"
        return try ClientConfiguration.parse(text, file: "(--subscription)", baseDirectory: data)
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
