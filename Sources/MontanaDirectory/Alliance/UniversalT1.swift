import MontanaWire

/// The public half of the alliance's universal T1 key (PROTOCOL.md section 2): what every client
/// needs to reach any universal-key front. JSON `universal_t1`.
public struct UniversalT1: Codable, Sendable, Equatable {
    /// Short ids are at most 8 bytes (as in `T1Params`); an alliance lists at most 16.
    public static let maxShortIDBytes = 8
    public static let maxShortIDs = 16
    /// A DNS name is at most 253 bytes; cover (a host or `host:port`) at most 255.
    public static let maxServerName = 253
    public static let maxCover = 255

    /// Hex of the 32-byte X25519 public key.
    public var x25519PublicKey: String
    /// Hex, each ≤ 8 bytes.
    public var shortIDs: [String]
    /// The SNI clients send (the cover name).
    public var serverName: String
    /// Where the front relays non-token connections; may be empty (the front's default).
    public var cover: String

    enum CodingKeys: String, CodingKey {
        case x25519PublicKey = "x25519_pk"
        case shortIDs = "short_ids"
        case serverName = "server_name"
        case cover
    }

    public init(x25519PublicKey: [UInt8], shortIDs: [[UInt8]], serverName: String, cover: String) {
        self.x25519PublicKey = Hex.encode(x25519PublicKey)
        self.shortIDs = shortIDs.map { Hex.encode($0) }
        self.serverName = serverName
        self.cover = cover
    }

    public var x25519PublicKeyBytes: [UInt8] { Hex.decode(x25519PublicKey) ?? [] }
    public var shortIDBytes: [[UInt8]] { shortIDs.compactMap { Hex.decode($0) } }

    /// The same parameters in the record's wire form.
    public var params: T1Params {
        T1Params(x25519PublicKey: x25519PublicKeyBytes, shortIDs: shortIDBytes, serverName: serverName, cover: cover)
    }

    /// Checks every field; normalises hex to lowercase.
    mutating func validate(file: String, key: String) throws(AllianceFileError) {
        x25519PublicKey = Hex.encode(try AllianceJSON.hex(x25519PublicKey, bytes: 32, file: file, key: "\(key).x25519_pk"))
        guard shortIDs.count <= Self.maxShortIDs else {
            throw .invalid(file: file, key: "\(key).short_ids", problem: "has \(shortIDs.count) entries, limit \(Self.maxShortIDs)")
        }
        for (i, s) in shortIDs.enumerated() {
            guard let b = Hex.decode(s), b.count <= Self.maxShortIDBytes else {
                throw .invalid(file: file, key: "\(key).short_ids[\(i)]", problem: "must be hex of at most \(Self.maxShortIDBytes) bytes")
            }
            shortIDs[i] = Hex.encode(b)
        }
        try AllianceJSON.text(serverName, bytes: 1...Self.maxServerName, file: file, key: "\(key).server_name")
        guard !serverName.contains(" ") else { throw .invalid(file: file, key: "\(key).server_name", problem: "contains a space") }
        try AllianceJSON.text(cover, bytes: 0...Self.maxCover, file: file, key: "\(key).cover")
    }
}
