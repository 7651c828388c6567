import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaWire

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Say what a key, public key or signed record file is. Never prints secret material.",
        discussion: """
        Recognises secret key files (identity, preface, account, T1: shows the public key and id it \
        derives and checks the file mode), public key files (*.pub.json), and signed directory records \
        (binary or hex: checks the signature and the node id).
        """
    )

    @Argument(help: "The file to inspect.")
    var file: String

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ValidationError("\(file): cannot read the file")
        }
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            if object["format"] as? String == KeyFile.format {
                try inspectSecret()
                return
            }
            if object["format"] as? String == "montana-public-v1" {
                print("\(file): public key file (\(object["kind"] as? String ?? "?"))")
                for key in ["node_id", "account_id", "x25519_pk"] {
                    if let v = object[key] as? String { print("  \(key): \(v)") }
                }
                for key in ["identity_pk", "kem_pk"] {
                    if let v = object[key] as? String, let b = Hex.decode(v) {
                        print("  \(key): \(b.count) bytes, sha256 \(Hex.encode(Digests.sha256(b)))")
                    }
                }
                return
            }
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let bytes = Hex.decode(text) ?? Array(data)
        if let record = try? RecordSigner.verify(bytes) {
            print("\(file): signed directory record (signature valid)")
            print("  node_id:   \(Hex.encode(record.entry.exitNodeID))")
            print("  country:   \(record.entry.countryCode)   capacity class: \(record.entry.capacityClass)")
            print("  roles:     \(describe(record.roles))")
            print("  endpoints: \(record.endpoints.map { "T\($0.profile) \($0.host):\($0.port)" }.joined(separator: ", "))")
            print("  issued:    \(record.issuedAt)   expires: \(record.expiresAt)\(record.isWithdrawal ? " (withdrawal)" : "")")
            return
        }
        throw ValidationError("\(file): not a Montana key, public key or signed record file")
    }

    private func inspectSecret() throws {
        let key = try KeyFile.load(file)
        guard let seed = key.seedBytes else { return }
        print("\(file): secret key file, \(key.kind.title); mode 0600 ok")
        switch key.kind {
        case .nodeIdentity:
            print("  node_id: \(try IdentityKey(seed: seed).nodeID.hex)")
        case .account:
            print("  account_id: \(Hex.encode(try IdentityKey(seed: seed).accountID))")
        case .nodeKEM:
            let kem = try KEMKey(seed: seed)
            print("  kem public key: sha256 \(Hex.encode(Digests.sha256(kem.publicKey))) (\(kem.publicKey.count) bytes)")
        case .t1:
            print("  x25519 public key: \(Hex.encode(try T1Key(privateKey: seed).publicKey))")
        }
    }

    private func describe(_ roles: NodeRoles) -> String {
        roles.isEmpty ? "none" : roles.names.joined(separator: ", ")
    }
}
