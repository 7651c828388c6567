import Foundation
import MontanaWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Shared reading, writing and field checks of the alliance's JSON files.
enum AllianceJSON {
    /// No alliance file comes near this: alliance.json with 16 pass issuers is about 70 KB.
    static let maxFileBytes = 256 * 1024

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// Encodes `value` as pretty, sorted-key JSON with a final newline.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        // Encoding plain strings, bools and arrays of them cannot fail.
        (try? Array(encoder().encode(value))).map { $0 + [0x0a] } ?? []
    }

    /// Decodes `T`, turning JSONDecoder's errors into `FILE: key.path: problem`.
    static func decode<T: Decodable>(_ type: T.Type, from data: [UInt8], file: String) throws(AllianceFileError) -> T {
        switch JSONProblem.decode(T.self, from: data, limit: maxFileBytes, typeName: typeName, corrupted: { _ in "invalid value" }) {
        case .success(let value): return value
        case .failure(let found): throw .invalid(file: file, key: found.key, problem: found.problem)
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        JSONProblem.commonTypeName(type) ?? "\(type)"
    }

    /// Reads a regular file of at most `maxFileBytes` (a device or FIFO is refused: it could be
    /// endless; the read itself is bounded too, in case the file grows after the check).
    static func read(_ path: String) throws(AllianceFileError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .io(file: path, problem: String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .io(file: path, problem: "not a regular file") }
        guard st.st_size <= off_t(maxFileBytes) else {
            throw .invalid(file: path, key: "(file)", problem: "is \(st.st_size) bytes, limit \(maxFileBytes)")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .io(file: path, problem: "cannot read") }
        defer { try? handle.close() }
        let data: Data
        do { data = try handle.read(upToCount: maxFileBytes + 1) ?? Data() } catch {
            throw .io(file: path, problem: "cannot read (\(error.localizedDescription))")
        }
        guard data.count <= maxFileBytes else {
            throw .invalid(file: path, key: "(file)", problem: "is over \(maxFileBytes) bytes")
        }
        return Array(data)
    }

    /// Reads a secret file, refusing one that group or others may read (like `KeyFile.load`).
    static func readSecret(_ path: String) throws(AllianceFileError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .io(file: path, problem: String(cString: strerror(errno))) }
        let mode = UInt32(st.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw .tooOpen(file: path, mode: mode) }
        return try read(path)
    }

    /// Writes a public file atomically (rename over the old one), mode 0644.
    static func writePublic(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    // MARK: field checks

    /// The file's `format` field must name exactly the version this code reads.
    static func format(_ found: String, expected: String, file: String) throws(AllianceFileError) {
        guard found == expected else {
            throw .invalid(file: file, key: "format", problem: "must be \"\(expected)\", found \"\(found)\"")
        }
    }

    /// `count` bytes as lowercase or upper-case hex.
    static func hex(_ text: String, bytes count: Int, file: String, key: String) throws(AllianceFileError) -> [UInt8] {
        guard let b = Hex.decode(text), b.count == count else {
            throw .invalid(file: file, key: key, problem: "must be \(count * 2) hex digits (\(count) bytes)")
        }
        return b
    }

    /// A 16-byte UUID as 32 hex digits, dashes allowed (`8-4-4-4-12`); returns the undashed,
    /// lowercase form the files are written with.
    static func uuid(_ text: String, file: String, key: String) throws(AllianceFileError) -> String {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let dashedOK = parts.count == 1 || parts.map(\.count) == [8, 4, 4, 4, 12]
        let plain = parts.joined()
        guard dashedOK, plain.utf8.count == 32, let b = Hex.decode(plain), b.count == 16 else {
            throw .invalid(file: file, key: key, problem: "must be a UUID: 32 hex digits, dashes allowed")
        }
        return Hex.encode(b)
    }

    /// UTF-8 text of `range` bytes without control characters.
    static func text(_ s: String, bytes range: ClosedRange<Int>, file: String, key: String) throws(AllianceFileError) {
        let n = s.utf8.count
        guard range.contains(n) else {
            throw .invalid(file: file, key: key, problem: "is \(n) bytes, must be \(range.lowerBound)...\(range.upperBound)")
        }
        guard !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .invalid(file: file, key: key, problem: "contains a control character")
        }
    }
}
