import Foundation
import MontanaWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Secret key files: a small JSON document `{"format": "montana-key-v1", "kind": …, "seed": hex}`
/// written with mode 0600. Loading refuses a file that group or others may read, naming the file.
public struct KeyFile: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case nodeIdentity = "node-identity"
        case nodeKEM = "node-kem"
        case account = "account"
        case t1 = "t1"

        public var title: String {
            switch self {
            case .nodeIdentity: return "node identity (ML-DSA-65 seed)"
            case .nodeKEM: return "node preface key (X-Wing seed)"
            case .account: return "account identity (ML-DSA-65 seed)"
            case .t1: return "T1 carrier key (X25519 private key)"
            }
        }
    }

    public static let format = "montana-key-v1"

    public var format: String
    public var kind: Kind
    public var seed: String

    public init(kind: Kind, seed: [UInt8]) {
        format = Self.format
        self.kind = kind
        self.seed = Hex.encode(seed)
    }

    public var seedBytes: [UInt8]? { Hex.decode(seed) }

    /// Writes `contents` to `path` with mode 0600, creating it exclusively unless `overwrite`.
    public static func writeSecret(_ contents: [UInt8], to path: String, overwrite: Bool = false) throws {
        var flags = O_WRONLY | O_CREAT | O_CLOEXEC
        flags |= overwrite ? O_TRUNC : O_EXCL
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw KeyFileError.exists(path) }
            throw KeyFileError.io(path, String(cString: strerror(errno)))
        }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw KeyFileError.io(path, String(cString: strerror(errno))) }
        var written = 0
        while written < contents.count {
            let n = contents[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw KeyFileError.io(path, String(cString: strerror(errno))) }
            written += n
        }
    }

    public func write(to path: String, overwrite: Bool = false) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Self.writeSecret(Array(try encoder.encode(self)) + [0x0a], to: path, overwrite: overwrite)
    }

    /// Loads a key file; refuses group- or world-readable files and the wrong kind.
    public static func load(_ path: String, expecting kind: Kind? = nil) throws -> KeyFile {
        var st = stat()
        guard stat(path, &st) == 0 else { throw KeyFileError.io(path, String(cString: strerror(errno))) }
        let mode = st.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw KeyFileError.tooOpen(path, mode: UInt32(mode))
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw KeyFileError.io(path, "cannot read") }
        let file: KeyFile
        do {
            file = try JSONDecoder().decode(KeyFile.self, from: data)
        } catch {
            throw KeyFileError.malformed(path, "not a Montana key file (\(error))")
        }
        guard file.format == format else { throw KeyFileError.malformed(path, "unknown format \"\(file.format)\"") }
        guard let seed = file.seedBytes, seed.count == 32 else { throw KeyFileError.malformed(path, "\"seed\" must be 64 hex digits") }
        if let kind, file.kind != kind {
            throw KeyFileError.wrongKind(path, expected: kind, found: file.kind)
        }
        return file
    }

    public static func loadIdentity(_ path: String, kind: Kind = .nodeIdentity) throws -> IdentityKey {
        try IdentityKey(seed: load(path, expecting: kind).seedBytes!)
    }

    public static func loadKEM(_ path: String) throws -> KEMKey {
        try KEMKey(seed: load(path, expecting: .nodeKEM).seedBytes!)
    }

    public static func loadT1(_ path: String) throws -> T1Key {
        try T1Key(privateKey: load(path, expecting: .t1).seedBytes!)
    }
}

public enum KeyFileError: Error, Equatable, CustomStringConvertible {
    case exists(String)
    case io(String, String)
    case tooOpen(String, mode: UInt32)
    case malformed(String, String)
    case wrongKind(String, expected: KeyFile.Kind, found: KeyFile.Kind)

    public var description: String {
        switch self {
        case .exists(let p): return "\(p): already exists; refusing to overwrite a key (remove it first, or pass --force)"
        case .io(let p, let why): return "\(p): \(why)"
        case .tooOpen(let p, let mode):
            return "\(p): secret key is readable by group or others (mode \(String(mode, radix: 8))); run `chmod 600 \(p)`"
        case .malformed(let p, let why): return "\(p): \(why)"
        case .wrongKind(let p, let e, let f): return "\(p): expected a \(e.title) key file, found a \(f.title) key file"
        }
    }
}
