import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaWire

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create keys: a node (identity + preface key), an account, or a T1 carrier key.",
        discussion: """
        Secret files are written with mode 0600 and are never printed. Beside them a public file \
        (`*.pub.json`) holds what others need: ids and public keys.

          node     identity.key (ML-DSA-65 seed), kem.key (X-Wing seed), node.pub.json
          account  account.key (ML-DSA-65 seed), account.pub.json
          t1       t1.key (X25519 private key), t1.pub.json
        """
    )

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case node, account, t1
    }

    @Argument(help: "What to create: node, account or t1.")
    var kind: Kind

    @Option(name: .shortAndLong, help: "Directory to write the key files into (created if missing).")
    var out: String

    @Flag(help: "Overwrite existing key files. Without it, existing keys are never touched.")
    var force = false

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let path = { (name: String) in (out as NSString).appendingPathComponent(name) }
        switch kind {
        case .node:
            let identity = try IdentityKey.generate()
            let kem = try KEMKey.generate()
            try KeyFile(kind: .nodeIdentity, seed: identity.seed).write(to: path("identity.key"), overwrite: force)
            try KeyFile(kind: .nodeKEM, seed: kem.seed).write(to: path("kem.key"), overwrite: force)
            let pub = PublicKeyFile.node(identity: identity, kem: kem)
            try pub.write(to: path("node.pub.json"))
            print("node_id:        \(identity.nodeID.hex)")
            print("kem public key: \(Hex.encode(kem.publicKey.prefix(16)))… (\(kem.publicKey.count) bytes, full key in node.pub.json)")
            print("wrote \(path("identity.key")) (0600), \(path("kem.key")) (0600), \(path("node.pub.json"))")
        case .account:
            let account = try IdentityKey.generate()
            try KeyFile(kind: .account, seed: account.seed).write(to: path("account.key"), overwrite: force)
            try PublicKeyFile.account(account).write(to: path("account.pub.json"))
            print("account_id: \(Hex.encode(account.accountID))")
            print("wrote \(path("account.key")) (0600), \(path("account.pub.json"))")
        case .t1:
            let key = try T1Key.generate()
            try KeyFile(kind: .t1, seed: key.privateKey).write(to: path("t1.key"), overwrite: force)
            try PublicKeyFile.t1(key).write(to: path("t1.pub.json"))
            print("t1 public key: \(Hex.encode(key.publicKey))")
            print("wrote \(path("t1.key")) (0600), \(path("t1.pub.json"))")
        }
    }
}

/// The public half of a key set, safe to publish.
struct PublicKeyFile: Codable {
    var format = "montana-public-v1"
    var kind: String
    var nodeID: String?
    var accountID: String?
    var identityPublicKey: String?
    var kemPublicKey: String?
    var x25519PublicKey: String?

    enum CodingKeys: String, CodingKey {
        case format, kind
        case nodeID = "node_id", accountID = "account_id", identityPublicKey = "identity_pk"
        case kemPublicKey = "kem_pk", x25519PublicKey = "x25519_pk"
    }

    static func node(identity: IdentityKey, kem: KEMKey) -> PublicKeyFile {
        PublicKeyFile(kind: "node", nodeID: identity.nodeID.hex, identityPublicKey: Hex.encode(identity.publicKey),
                      kemPublicKey: Hex.encode(kem.publicKey))
    }

    static func account(_ key: IdentityKey) -> PublicKeyFile {
        PublicKeyFile(kind: "account", accountID: Hex.encode(key.accountID), identityPublicKey: Hex.encode(key.publicKey))
    }

    static func t1(_ key: T1Key) -> PublicKeyFile {
        PublicKeyFile(kind: "t1", x25519PublicKey: Hex.encode(key.publicKey))
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try (encoder.encode(self) + Data("\n".utf8)).write(to: URL(fileURLWithPath: path))
    }
}
