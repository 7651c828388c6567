import Foundation
import MontanaCrypto
import MontanaWire
@testable import MontanaDirectory

/// Alliances, links and passes for the subscription and pass tests.
enum SubscriptionFixture {
    static func alliance(name: String = "Test Alliance") throws -> (AllianceDocument, AllianceSecret) {
        try Alliance.create(name: name, open: false, serverName: "www.example.com", cover: "")
    }

    static func link(_ alliance: AllianceDocument, host: String = "127.0.0.1", port: UInt16 = 7443, profile: UInt8 = 0,
                     node: NodeID? = nil, kem: [UInt8]? = nil, label: String? = "front") throws -> MemberLink {
        MemberLink(alliance: alliance.uuidBytes, host: host, port: port, nodeID: try node ?? IdentityKey.generate().nodeID,
                   kemPublicKey: try kem ?? KEMKey.generate().publicKey, profile: profile, label: label)
    }

    /// The JSON object of `bytes`, for editing fields in tests.
    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try (JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]) ?? [:]
    }

    static func bytes(_ object: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object))
    }

    static func mode(_ path: String) throws -> Int {
        ((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1) & 0o777
    }
}
