import Foundation
import MontanaCrypto
import MontanaTransport

/// One member of a test federation, set up with the real CLI: `montana node init` (keys and the
/// commented node.toml), `montana alliance endorse`, the user's edits of node.toml, `montana node
/// link`; then `montana node --config` as a child process, stopped by PID.
final class FederationNode: @unchecked Sendable {
    struct Spec: Sendable {
        let name: String
        /// The node's loopback address: its own /16 (transit, public host and egress source).
        let host: String
        /// The country the node claims (node.country).
        let country: String
        /// What the GeoIP CSV says for the node's /16 (differs from `country` for a liar).
        let geoCountry: String
        let operatorLabel: String
        let roles: [String]
        /// `[exit] admission`.
        var admission = "any-account"

        init(name: String, host: String, country: String, geoCountry: String? = nil, operatorLabel: String,
             roles: [String] = ["front", "exit"], admission: String = "any-account") {
            self.name = name
            self.host = host
            self.country = country
            self.geoCountry = geoCountry ?? country
            self.operatorLabel = operatorLabel
            self.roles = roles
            self.admission = admission
        }

        var isExit: Bool { roles.contains("exit") }
        /// `127.21.0.0/16` for 127.21.0.1.
        var slash16: String {
            let parts = host.split(separator: ".")
            return "\(parts[0]).\(parts[1]).0.0/16"
        }
    }

    /// How long a node may take to listen: key loading, SQLite and the GeoIP table on a loaded
    /// 2-core machine that starts six nodes at once.
    static let startTimeout: TimeInterval = 40

    let spec: Spec
    let directory: String
    let configPath: String
    let transitPort: Int
    let adminPort: Int
    let nodeID: String
    let identity: IdentityKey
    /// Its `montana://` link, as `montana node link` prints it.
    let link: String
    private(set) var process: ChildProcess?

    var adminAddress: String { "127.0.0.1:\(adminPort)" }
    var target: RelayTarget {
        get throws {
            guard let id = NodeID(hex: nodeID), let kem = try? KeyFile.loadKEM((directory as NSString).appendingPathComponent("kem.key")) else {
                throw E2EError("cannot read \(spec.name)'s keys")
            }
            return RelayTarget(nodeID: id, kemPublicKey: kem.publicKey, host: spec.host, port: transitPort)
        }
    }

    /// Creates the node's directory under `root` with the CLI and edits its node.toml; does not
    /// start it. `bootstrap` links go to `[directory] bootstrap` (set later with `setBootstrap`
    /// when the links are not known yet).
    init(spec: Spec, root: String, alliance: FederationAlliance, geoipPath: String) throws {
        self.spec = spec
        directory = (root as NSString).appendingPathComponent(spec.name)
        configPath = (directory as NSString).appendingPathComponent("node.toml")
        transitPort = try FederationNet.freePort(host: spec.host)
        adminPort = try FederationNet.freePort(host: "127.0.0.1")
        let logs = root
        let initOut = try FederationCLI.check(["node", "init", directory, "--country", spec.country,
                                               "--roles", spec.roles.joined(separator: ","),
                                               "--transit", "\(spec.host):\(transitPort)", "--public-host", spec.host],
                                              logDirectory: logs)
        nodeID = try FederationCLI.field("node_id:", in: initOut)
        identity = try KeyFile.loadIdentity((directory as NSString).appendingPathComponent("identity.key"))
        let endorsement = (directory as NSString).appendingPathComponent("endorsement.json")
        try FederationCLI.check(["alliance", "endorse", "--secret", alliance.secretPath,
                                 "--node", (directory as NSString).appendingPathComponent("node.pub.json"),
                                 "--operator", spec.operatorLabel, "--out", endorsement], logDirectory: logs)
        var edits: [(section: String, key: String, value: String)] = [
            ("node", "operator", TOMLEdit.string(spec.operatorLabel)),
            ("node", "alliance", TOMLEdit.string(alliance.documentPath)),
            ("node", "endorsement", TOMLEdit.string("endorsement.json")),
            ("listen", "admin", TOMLEdit.string("127.0.0.1:\(adminPort)")),
            ("directory", "geoip", TOMLEdit.string(geoipPath)),
        ]
        if spec.isExit {
            edits += [
                ("exit", "admission", TOMLEdit.string(spec.admission)),
                // The test's file server listens on 127.0.0.1: only allow_private re-opens loopback.
                ("exit", "allow_private", TOMLEdit.array(["127.0.0.0/8"])),
                // Egress leaves from the node's own /16, so attesters geolocate it there.
                ("exit", "egress_source", TOMLEdit.array([spec.host])),
            ]
        }
        try TOMLEdit.apply(edits, to: configPath)
        link = try FederationCLI.check(["node", "link", "--config", configPath], logDirectory: logs)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard link.hasPrefix("montana://") else { throw E2EError("montana node link printed \"\(link)\"") }
    }

    /// `[directory] bootstrap`: the one (or few) members this node asks first.
    func setBootstrap(_ links: [String]) throws {
        try TOMLEdit.apply([("directory", "bootstrap", TOMLEdit.array(links))], to: configPath)
    }

    /// Starts `montana node --config` and returns without waiting (see `waitUntilListening`).
    func launch() throws {
        guard process == nil else { return }
        process = try ChildProcess(name: "node", executable: try Paths.montana(), arguments: ["node", "--config", configPath],
                                   logDirectory: directory)
    }

    /// Waits (bounded by `startTimeout`) until the admin and transit ports accept.
    func waitUntilListening() throws {
        guard let process else { throw E2EError("\(spec.name) was not launched") }
        let up = poll(timeout: Self.startTimeout, interval: 0.05) {
            !process.isRunning || (FederationNet.canConnect(host: "127.0.0.1", port: adminPort)
                                   && FederationNet.canConnect(host: spec.host, port: transitPort))
        }
        guard up, process.isRunning else {
            throw E2EError("montana node \(spec.name) did not listen on \(spec.host):\(transitPort) and \(adminAddress) within \(Int(Self.startTimeout)) s:\n\(diagnostics())")
        }
    }

    func start() throws {
        try launch()
        try waitUntilListening()
    }

    /// SIGTERM, SIGKILL after 5 s. Safe to call twice.
    func stop() {
        process?.stop(grace: 5)
    }

    var isRunning: Bool { process?.isRunning ?? false }

    func directoryView() throws -> DirectoryDocument {
        try DirectoryDocument.fetch(admin: adminAddress)
    }

    func metrics() throws -> PrometheusText {
        let result = try Curl.get("http://\(adminAddress)/metrics")
        guard result.succeeded else { throw E2EError("cannot scrape \(spec.name): \(result)") }
        return PrometheusText(result.stdoutText)
    }

    func diagnostics(_ count: Int = 2500) -> String {
        let state = process.map { $0.isRunning ? "running, pid \($0.pid)" : "GONE (status \($0.process.terminationStatus))" } ?? "not started"
        return "\(spec.name) (\(spec.host), \(nodeID.prefix(12))) \(state)\n" + (process?.outputTail(count) ?? "")
    }
}

/// `montana alliance init`: alliance.json and alliance.secret (0600) in `root/alliance`.
struct FederationAlliance: Sendable {
    let documentPath: String
    let secretPath: String

    init(root: String, name: String) throws {
        let directory = (root as NSString).appendingPathComponent("alliance")
        try FederationCLI.check(["alliance", "init", directory, "--name", name], logDirectory: root)
        documentPath = (directory as NSString).appendingPathComponent("alliance.json")
        secretPath = (directory as NSString).appendingPathComponent("alliance.secret")
    }
}
