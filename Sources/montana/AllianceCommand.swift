import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaTransport
import MontanaWire

struct AllianceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alliance",
        abstract: "Create an alliance and endorse its members.",
        discussion: """
        `montana alliance init DIR --name NAME` writes DIR/alliance.json (public: ship it to every \
        member and client) and DIR/alliance.secret (mode 0600: its keys admit members and issue \
        passes; keep it off the nodes). `montana alliance endorse` signs a member's node id so other \
        members accept its directory record. `montana alliance t1-key` exports the universal T1 \
        key for members whose T1 fronts use it.
        """,
        subcommands: [AllianceInit.self, AllianceEndorse.self, AllianceT1Key.self]
    )
}

struct AllianceInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create alliance.json and alliance.secret (0600) in a directory.")

    @Argument(help: "Directory for the alliance files (created if missing).")
    var directory: String

    @Option(help: "The alliance's name (1-64 bytes), shown to members and users.")
    var name: String

    @Flag(help: "Accept any node's record without endorsement. For experiments only.")
    var open = false

    @Option(help: "The TLS server name (SNI) universal-key fronts present.")
    var serverName = "www.example.com"

    @Option(help: "Where universal-key fronts relay probes (HOST:PORT); default: the front's own setting.")
    var cover: String?

    @Flag(help: "Overwrite existing alliance files (the old alliance's keys are lost).")
    var force = false

    func run() throws {
        if let cover {
            do { _ = try HostPort(parsing: cover) } catch { throw ValidationError("--cover: \(cover) is not host:port (\(error))") }
        }
        let documentPath = (directory as NSString).appendingPathComponent("alliance.json")
        let secretPath = (directory as NSString).appendingPathComponent("alliance.secret")
        if !force {
            for path in [documentPath, secretPath] where FileManager.default.fileExists(atPath: path) {
                throw ValidationError("\(path) already exists; refusing to overwrite an alliance (pass --force to replace it and lose its keys)")
            }
        }
        let document: AllianceDocument
        let secret: AllianceSecret
        do {
            (document, secret) = try Alliance.create(name: name, open: open, serverName: serverName, cover: cover ?? "")
        } catch let error as AllianceFileError {
            guard case .invalid(_, let key, let problem) = error else { throw ValidationError("\(error)") }
            let option = ["name": "--name", "universal_t1.server_name": "--server-name", "universal_t1.cover": "--cover"][key] ?? key
            throw ValidationError("\(option): \(problem)")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try secret.write(to: secretPath, overwrite: force)
            try document.write(to: documentPath)
        } catch {
            throw ValidationError("\(error)")
        }
        print("alliance:       \(document.name)")
        print("uuid:           \(document.uuid)")
        print("membership key: \(NodeID(identityPublicKey: document.membershipKeyBytes).short)")
        print("pass issuer:    \(document.passIssuerKeys.map { NodeID(identityPublicKey: $0).short }.joined(separator: ", "))")
        if document.open {
            print("OPEN alliance: any node's record is accepted without endorsement (experiments only)")
        }
        print("wrote \(documentPath) (public), \(secretPath) (0600, keep it off the nodes)")
        print("next: montana alliance endorse --secret \(secretPath) --node NODE_DIR/node.pub.json --out endorsement.json")
    }
}

struct AllianceEndorse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endorse", abstract: "Endorse a member node: sign its node id with the alliance's membership key.")

    @Option(help: "The alliance's secret file (alliance.secret).")
    var secret: String

    @Option(help: "The alliance's public file; default: alliance.json beside the secret.")
    var alliance: String?

    @Option(help: "The member's public key file (node.pub.json from `montana node init` or `montana keygen node`).")
    var node: String

    @Option(name: .customLong("operator"), help: "The operator's label (≤ 64 bytes); the node's record must carry the same label.")
    var operatorLabel = ""

    @Option(help: "Where to write the endorsement file.")
    var out: String

    func run() throws {
        let (document, allianceSecret) = try AllianceFiles.load(secret: secret, alliance: alliance)
        let nodeID = try PublicKeyFiles.nodeID(from: node)
        let file: EndorsementFile
        do {
            file = try EndorsementFile.make(endorsing: nodeID, operator: operatorLabel, alliance: document,
                                            secret: allianceSecret, now: WallClock.now())
            try file.write(to: out)
        } catch {
            throw ValidationError("\("\(error)".replacingOccurrences(of: "(endorsement): operator", with: "--operator"))")
        }
        print("endorsed node \(nodeID.hex)")
        print("  alliance: \(document.name) (\(document.uuid))")
        print("  operator: \(operatorLabel.isEmpty ? "(none)" : operatorLabel)")
        print("wrote \(out); give it to the node's operator (node.endorsement in node.toml)")
    }
}

struct AllianceT1Key: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "t1-key",
        abstract: "Export the alliance's universal T1 key as t1.key (0600) for a member's [carriers.tls].",
        discussion: """
        A front whose `[carriers.tls] key` is this file is a universal-key T1 front: clients reach it \
        with the universal public key from their subscription (alliance.json `universal_t1`), and its \
        cover name and short ids default to the alliance's. Anyone holding it can answer as a T1 \
        front of this alliance, so hand it only to member operators over a private channel; a member \
        with its own key (`montana keygen t1`) needs nothing from here.
        """)

    @Option(help: "The alliance's secret file (alliance.secret).")
    var secret: String

    @Option(help: "The alliance's public file; default: alliance.json beside the secret.")
    var alliance: String?

    @Option(help: "The directory to write t1.key and t1.pub.json into.")
    var out: String

    @Flag(help: "Overwrite an existing t1.key.")
    var force = false

    func run() throws {
        let (document, allianceSecret) = try AllianceFiles.load(secret: secret, alliance: alliance)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let path = { (name: String) in (out as NSString).appendingPathComponent(name) }
        let key = allianceSecret.universalT1
        try KeyFile(kind: .t1, seed: key.privateKey).write(to: path("t1.key"), overwrite: force)
        try PublicKeyFile.t1(key).write(to: path("t1.pub.json"))
        print("universal T1 key of \(document.name) (\(document.uuid))")
        print("  public key: \(Hex.encode(key.publicKey))")
        print("  cover name: \(document.universalT1.serverName), short ids: \(document.universalT1.shortIDs.joined(separator: ", "))")
        print("wrote \(path("t1.key")) (0600), \(path("t1.pub.json")); name it in the member's [carriers.tls] key")
    }
}

/// Loading the alliance's files for the commands that sign with its keys.
enum AllianceFiles {
    /// The secret and its alliance.json (`alliance`, or alliance.json beside the secret), checked
    /// to belong together.
    static func load(secret: String, alliance: String?) throws -> (AllianceDocument, AllianceSecret) {
        let documentPath = alliance ?? ((secret as NSString).deletingLastPathComponent as NSString).appendingPathComponent("alliance.json")
        do {
            let document = try AllianceDocument.load(path: documentPath)
            let allianceSecret = try AllianceSecret.load(path: secret)
            try allianceSecret.check(matches: document, file: secret)
            return (document, allianceSecret)
        } catch {
            if alliance == nil, !FileManager.default.fileExists(atPath: documentPath) {
                throw ValidationError("\(documentPath): not found beside the secret; name the alliance file with --alliance FILE")
            }
            throw ValidationError("\(error)")
        }
    }
}

/// Reading the `*.pub.json` files `montana keygen` and `montana node init` write.
enum PublicKeyFiles {
    static let maxBytes = 64 * 1024

    static func object(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path): cannot read the file") }
        guard data.count <= maxBytes,
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              object["format"] as? String == "montana-public-v1" else {
            throw ValidationError("\(path): not a Montana public key file (*.pub.json)")
        }
        return object
    }

    /// The node id of a node's public key file, checked against its identity key when present.
    static func nodeID(from path: String) throws -> NodeID {
        let object = try object(path)
        guard object["kind"] as? String == "node" else {
            throw ValidationError("\(path): kind: is \"\(object["kind"] as? String ?? "?")\", expected a node's public key file")
        }
        guard let text = object["node_id"] as? String, let id = NodeID(hex: text) else {
            throw ValidationError("\(path): node_id: must be 64 hex digits")
        }
        if let pk = (object["identity_pk"] as? String).flatMap(Hex.decode), NodeID(identityPublicKey: pk) != id {
            throw ValidationError("\(path): node_id: does not match identity_pk")
        }
        return id
    }

    /// The account id of an account's public key file, checked against its key when present.
    static func accountID(from path: String) throws -> [UInt8] {
        let object = try object(path)
        guard object["kind"] as? String == "account" else {
            throw ValidationError("\(path): kind: is \"\(object["kind"] as? String ?? "?")\", expected an account's public key file")
        }
        guard let id = (object["account_id"] as? String).flatMap(Hex.decode), id.count == 32 else {
            throw ValidationError("\(path): account_id: must be 64 hex digits")
        }
        if let pk = (object["identity_pk"] as? String).flatMap(Hex.decode), AccountID.derive(accountPublicKey: pk) != id {
            throw ValidationError("\(path): account_id: does not match identity_pk")
        }
        return id
    }
}
