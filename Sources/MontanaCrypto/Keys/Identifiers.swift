import Foundation
import Crypto
import MontanaWire

/// A 32-byte identifier derived from an identity public key (PROTOCOL.md section 1).
public struct NodeID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(WireError) {
        guard bytes.count == 32 else { throw .invalidField("node id: must be 32 bytes") }
        self.bytes = bytes
    }

    /// `node_id = H("mt-node" ‖ identity_pk)`.
    public init(identityPublicKey: [UInt8]) {
        bytes = Digests.sha256(Array("mt-node".utf8) + identityPublicKey)
    }

    public init?(hex: String) {
        guard let b = Hex.decode(hex), b.count == 32 else { return nil }
        bytes = b
    }

    /// The multihash naming a node in relay messages: `0x12 0x20 ‖ node_id`.
    public var multihash: [UInt8] { [0x12, 0x20] + bytes }

    public init?(multihash: [UInt8]) {
        guard multihash.count == 34, multihash[0] == 0x12, multihash[1] == 0x20 else { return nil }
        bytes = Array(multihash[2...])
    }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
    /// Short form for tables and logs about nodes (never about users).
    public var short: String { String(hex.prefix(12)) }
}

public enum AccountID {
    /// `account_id = H("mt-account" ‖ u16 LE 1 ‖ account_pk)`.
    public static func derive(accountPublicKey: [UInt8]) -> [UInt8] {
        Digests.sha256(Array("mt-account".utf8) + [0x01, 0x00] + accountPublicKey)
    }
}

/// The anonymous circuit source id: `0x00 0x10 ‖ 16 random bytes`.
public enum AnonymousPeerID {
    public static func random() -> [UInt8] {
        [0x00, 0x10] + SecureRandom.bytes(16)
    }
}

/// Time windows: `W = floor(unix / 60)`, slot = `floor(W / 2)`.
public enum TimeWindow {
    public static let seconds: UInt64 = 60

    public static func window(unixSeconds: UInt64) -> UInt64 { unixSeconds / seconds }
    public static func slot(unixSeconds: UInt64) -> UInt64 { window(unixSeconds: unixSeconds) / 2 }
}

public enum Digests {
    public static func sha256<D: DataProtocol>(_ data: D) -> [UInt8] {
        Array(SHA256.hash(data: data))
    }
}

public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    }
}

/// Constant-time equality for MACs, tokens and ids compared against secrets.
public enum ConstantTime {
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
