import Foundation
import MontanaCrypto
import MontanaWire
@testable import MontanaNode

/// A temporary directory with real key files, and config text to go with them.
final class ConfigFixture {
    let directory: String
    let identity: IdentityKey
    let kem: KEMKey
    let account: IdentityKey

    init() throws {
        directory = NSTemporaryDirectory() + "montana-config-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/keys", withIntermediateDirectories: true)
        let identitySeed = SecureRandom.bytes(32), kemSeed = SecureRandom.bytes(32), accountSeed = SecureRandom.bytes(32)
        try KeyFile(kind: .nodeIdentity, seed: identitySeed).write(to: directory + "/keys/identity.key")
        try KeyFile(kind: .nodeKEM, seed: kemSeed).write(to: directory + "/keys/kem.key")
        try KeyFile(kind: .account, seed: accountSeed).write(to: directory + "/keys/account.key")
        identity = try IdentityKey(seed: identitySeed)
        kem = try KEMKey(seed: kemSeed)
        account = try IdentityKey(seed: accountSeed)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func write(_ text: String, to name: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func peer(name: String = "peers", id: String = Hex.encode(SecureRandom.bytes(32)), country: String = "NL",
                     endpoint: String = "198.51.100.7:7443") throws -> String {
        let kem = try KEMKey.generate()
        return """

        [[\(name)]]
        node_id = "\(id)"
        kem_pk = "\(Hex.encode(kem.publicKey))"
        endpoint = "\(endpoint)"
        country = "\(country)"
        roles = ["front", "exit"]

        """
    }

    /// A complete node config; `replacing` swaps exact substrings to inject one fault.
    func nodeText(extra: String = "", replacing: [(String, String)] = []) -> String {
        var text = """
        [node]
        identity_key = "keys/identity.key"
        kem_key = "keys/kem.key"
        roles = ["front", "exit"]
        country = "DE"
        capacity = "high"
        operator = "Example Ops"
        alliance = "00112233445566778899aabbccddeeff"

        [listen]
        transit = "0.0.0.0:7443"
        public_host = "203.0.113.5"
        admin = "127.0.0.1:9090"

        [limits]
        circuits_per_source = 32
        circuits_total = 1024
        handshakes_per_second = 100
        streams_per_session = 128
        egress_open_timeout_seconds = 20
        egress_idle_timeout_seconds = 120

        [exit]
        admission = "allow-list"
        allow_accounts = ["\(Hex.encode(account.accountID))"]
        policy = "default-deny"
        allow = ["443", "example.org", "198.51.100.0/24"]
        deny = ["8000-8100"]

        [log]
        level = "debug"

        """ + extra
        for (old, new) in replacing {
            precondition(text.contains(old), "fixture does not contain \(old)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }

    func parseNode(_ text: String) throws(ConfigurationError) -> NodeConfiguration {
        try NodeConfiguration.parse(text, file: "node.toml", baseDirectory: directory)
    }

    func nodeError(_ text: String) -> ConfigurationError? {
        do {
            _ = try parseNode(text)
            return nil
        } catch {
            return error
        }
    }
}
