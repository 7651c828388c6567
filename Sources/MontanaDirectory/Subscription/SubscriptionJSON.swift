import Foundation
import MontanaWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading, writing and checked decoding of pass files and subscription documents. The types
/// validate inside `init(from:)` and report a problem as `DecodingError.dataCorrupted` whose
/// coding path is the JSON key; `decode` turns every `DecodingError` into `FILE: key.path: problem`.
enum SubscriptionJSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Strings, integers, booleans, nulls, arrays and objects of them cannot fail to encode.
        return (try? Array(encoder.encode(value))).map { $0 + [0x0a] } ?? []
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: [UInt8], file: String, limit: Int) throws(SubscriptionFileError) -> T {
        switch JSONProblem.decode(T.self, from: data, limit: limit, typeName: typeName, corrupted: { sanitized($0.debugDescription) }) {
        case .success(let value): return value
        case .failure(let found): throw .invalid(file: file, key: found.key, problem: found.problem)
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        if let name = JSONProblem.commonTypeName(type) { return name }
        switch type {
        case is UInt64.Type, is Int.Type, is UInt8.Type, is UInt16.Type, is UInt32.Type: return "a non-negative integer"
        default: return "\(type)".hasPrefix("Array") ? "an array" : "an object"
        }
    }

    /// Decoder messages can quote input: no control characters, at most 200 characters.
    private static func sanitized(_ text: String) -> String {
        String(Printable.quote(text, limit: 200).dropFirst().dropLast())
    }

    /// Reads at most `limit` bytes from a regular file.
    static func read(_ path: String, limit: Int) throws(SubscriptionFileError) -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .io(file: path, problem: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .io(file: path, problem: "not a regular file") }
        guard info.st_size <= off_t(limit) else { throw .invalid(file: path, key: "(file)", problem: "is \(info.st_size) bytes, limit \(limit)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(file: path, problem: "cannot read") }
        guard data.count <= limit else { throw .invalid(file: path, key: "(file)", problem: "is \(data.count) bytes, limit \(limit)") }
        return Array(data)
    }

    /// Writes `bytes` to a new file beside `path` with `mode`, then renames it over `path`, so a
    /// reader (the subscription server re-reads on every request) sees the old or the new file,
    /// never half of one, and a secret never exists with a wider mode.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(SubscriptionFileError) {
        let temporary = path + ".tmp-" + String(UInt64.random(in: 0 ... .max), radix: 16)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io(file: path, problem: String(cString: strerror(errno))) }
        var ok = fchmod(fd, mode) == 0
        var written = 0
        while ok && written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n > 0 { written += n } else if n < 0 && errno == EINTR { continue } else { ok = false }
        }
        let problem = ok ? nil : String(cString: strerror(errno))
        if ok { ok = fsync(fd) == 0 }
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let why = problem ?? String(cString: strerror(errno))
            unlink(temporary)
            throw .io(file: path, problem: why)
        }
    }
}

/// A coding key made from a string: for coding paths that name keys of nested files.
struct NamedKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer {
    /// A `dataCorrupted` error at `key` saying `problem`.
    func problem(_ key: Key, _ problem: String) -> DecodingError {
        DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: problem)
    }

    /// Hex of exactly `count` bytes (or `count` nil: any length up to `limit` bytes).
    func hex(_ key: Key, bytes count: Int? = nil, limit: Int = .max) throws -> [UInt8] {
        let text = try decode(String.self, forKey: key)
        guard text.utf8.count / 2 <= limit, let bytes = Hex.decode(text) else {
            throw problem(key, count.map { "must be \($0 * 2) hex digits (\($0) bytes)" } ?? "must be hex of at most \(limit) bytes")
        }
        if let count, bytes.count != count { throw problem(key, "must be \(count * 2) hex digits (\(count) bytes)") }
        return bytes
    }

    /// A JSON integer 0...2^64-1. Decoder errors for negative, fractional or huge numbers do not
    /// always carry the key, so they are replaced by one that does.
    func unsigned(_ key: Key) throws -> UInt64 {
        guard contains(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
        }
        do {
            return try decode(UInt64.self, forKey: key)
        } catch {
            throw problem(key, "must be an integer 0...18446744073709551615")
        }
    }

    /// A JSON integer in `range`.
    func integer(_ key: Key, in range: ClosedRange<Int>) throws -> Int {
        let value = try unsigned(key)
        guard let int = Int(exactly: value), range.contains(int) else {
            throw problem(key, "must be \(range.lowerBound)...\(range.upperBound), found \(value)")
        }
        return int
    }

    /// UTF-8 text of `range` bytes without control characters.
    func text(_ key: Key, bytes range: ClosedRange<Int>) throws -> String {
        let text = try decode(String.self, forKey: key)
        guard range.contains(text.utf8.count) else {
            throw problem(key, "is \(text.utf8.count) bytes, must be \(range.lowerBound)...\(range.upperBound)")
        }
        guard !text.unicodeScalars.contains(where: Printable.isControl) else { throw problem(key, "contains a control character") }
        return text
    }
}
