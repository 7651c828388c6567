import Foundation
import MontanaWire

/// A GeoIP database in the simplest text form: one `CIDR,CC` per line (`192.0.2.0/24,DE`,
/// `2001:db8::/32,NL`), IPv4 and IPv6 mixed, `#` starting a comment (whole line or trailing),
/// blank lines ignored. The longest matching prefix wins. A bare address means a /32 or /128.
/// An optional third field names the prefix's autonomous system (`10.101.0.0/16,IR,58224` or
/// `…,AS58224`, 0-4294967295; absent means 0, unknown): clients' reachability vantage (PROTOCOL.md 9).
///
/// Loading is strict, because a wrong table silently mislocates exits: every bad line is an error
/// naming `file:line` and the problem, including host bits set below the prefix, a code that is not
/// an assigned ISO 3166-1 alpha-2 code, and the same prefix listed with two different countries (or ASNs).
/// The table is immutable once loaded, so lookups are thread-safe without a lock.
public final class CSVGeoIP: GeoIPDatabase {
    /// At most 1,000,000 lines (comments and blank lines count): well above the ~500,000 prefixes
    /// of a full country table, and it bounds memory to a few hundred MB at worst.
    public static let maxLines = 1_000_000
    /// At most 1024 bytes per line: a CIDR and a code need under 60; long comments are still fine.
    public static let maxLineBytes = 1024
    /// At most 128 MiB of file, so a wrong path (a disk image, a log) fails fast instead of being read.
    public static let maxFileBytes = 128 << 20

    private struct V6Key: Hashable {
        var high: UInt64
        var low: UInt64
    }

    /// Index = prefix length; value = masked prefix → the code as two ASCII bytes (`"DE"` =
    /// 0x4445) in bits 32-47 and the ASN in bits 0-31.
    private let v4: [[UInt32: UInt64]]
    private let v6: [[V6Key: UInt64]]
    /// The prefix lengths present, longest first: a lookup tries only these.
    private let v4Lengths: [Int]
    private let v6Lengths: [Int]
    /// How many prefixes were loaded.
    public let count: Int

    /// Loads a `CIDR,CC` file.
    public convenience init(path: String) throws(GeoIPError) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .file(path: path, problem: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .file(path: path, problem: "not a regular file") }
        guard info.st_size <= Self.maxFileBytes else {
            throw .file(path: path, problem: "\(info.st_size) bytes; a GeoIP text file may have at most \(Self.maxFileBytes)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw .file(path: path, problem: "cannot read") }
        try self.init(contents: Array(data), source: path)
    }

    /// Parses the text of a `CIDR,CC` file; `source` names it in errors.
    public init(contents: [UInt8], source: String) throws(GeoIPError) {
        guard contents.count <= Self.maxFileBytes else {
            throw .file(path: source, problem: "\(contents.count) bytes; a GeoIP text file may have at most \(Self.maxFileBytes)")
        }
        var v4 = [[UInt32: UInt64]](repeating: [:], count: 33)
        var v6 = [[V6Key: UInt64]](repeating: [:], count: 129)
        var count = 0
        var lineNumber = 0
        var start = 0
        while start < contents.count {
            let end = contents[start...].firstIndex(of: 0x0a) ?? contents.count
            lineNumber += 1
            guard lineNumber <= Self.maxLines else {
                throw .line(path: source, line: lineNumber, problem: "more than \(Self.maxLines) lines")
            }
            guard end - start <= Self.maxLineBytes else {
                throw .line(path: source, line: lineNumber, problem: "line is longer than \(Self.maxLineBytes) bytes")
            }
            let line = contents[start..<end]
            start = end + 1
            do throws(LineProblem) {
                guard let (prefix, code, cidr) = try Self.parseLine(line) else { continue }
                switch prefix {
                case .v4(let address, let length):
                    if let existing = v4[length][address] {
                        guard existing == code else { throw LineProblem("\(Printable.quote(cidr)) was already listed as \(Self.describe(existing))") }
                        continue
                    }
                    v4[length][address] = code
                case .v6(let high, let low, let length):
                    let key = V6Key(high: high, low: low)
                    if let existing = v6[length][key] {
                        guard existing == code else { throw LineProblem("\(Printable.quote(cidr)) was already listed as \(Self.describe(existing))") }
                        continue
                    }
                    v6[length][key] = code
                }
                count += 1
            } catch {
                throw .line(path: source, line: lineNumber, problem: error.problem)
            }
        }
        self.v4 = v4
        self.v6 = v6
        self.v4Lengths = (0...32).reversed().filter { !v4[$0].isEmpty }
        self.v6Lengths = (0...128).reversed().filter { !v6[$0].isEmpty }
        self.count = count
    }

    public func country(for address: [UInt8]) -> String? {
        entry(for: address).map { Self.string(UInt16(truncatingIfNeeded: $0 >> 32)) }
    }

    /// The ASN of the longest matching prefix (0 when its line has none); nil for an unknown address.
    public func asn(for address: [UInt8]) -> UInt32? {
        entry(for: address).map { UInt32(truncatingIfNeeded: $0) }
    }

    private func entry(for address: [UInt8]) -> UInt64? {
        if let mapped = IPLiteral.mappedIPv4(address) { return entry(for: mapped) }
        switch address.count {
        case 4:
            let value = address.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            for length in v4Lengths {
                if let found = v4[length][value & Self.mask32(length)] { return found }
            }
            return nil
        case 16:
            let high = address[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = address[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            for length in v6Lengths {
                let key = length <= 64 ? V6Key(high: high & Self.mask64(length), low: 0)
                                       : V6Key(high: high, low: low & Self.mask64(length - 64))
                if let found = v6[length][key] { return found }
            }
            return nil
        default:
            return nil
        }
    }

    // MARK: - Parsing

    private struct LineProblem: Error {
        let problem: String
        init(_ problem: String) { self.problem = problem }
    }

    private enum Prefix {
        case v4(UInt32, Int)
        case v6(UInt64, UInt64, Int)
    }

    /// nil for a blank or comment-only line.
    private static func parseLine(_ raw: ArraySlice<UInt8>) throws(LineProblem) -> (Prefix, UInt64, String)? {
        var line = raw
        if let hash = line.firstIndex(of: UInt8(ascii: "#")) { line = line[..<hash] }
        let fields = line.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map(trim)
        if fields.count == 1 && fields[0].isEmpty { return nil }
        guard fields.count == 2 || fields.count == 3 else {
            throw LineProblem("expected \"CIDR,CC\" or \"CIDR,CC,ASN\" (fields separated by commas), found \(fields.count) field(s)")
        }
        let prefix = try parsePrefix(text(of: fields[0]))
        let code = text(of: fields[1]).uppercased()
        guard code.utf8.count == 2, CountryCode.isAssigned(code) else {
            throw LineProblem("\(Printable.quote(text(of: fields[1]))) is not an assigned ISO 3166-1 alpha-2 country code")
        }
        let bytes = Array(code.utf8)
        let asn = fields.count == 3 ? try parseASN(fields[2]) : 0
        return (prefix, (UInt64(bytes[0]) << 8 | UInt64(bytes[1])) << 32 | UInt64(asn), text(of: fields[0]))
    }

    /// `58224` or `AS58224` (any case), 0-4294967295.
    private static func parseASN(_ field: ArraySlice<UInt8>) throws(LineProblem) -> UInt32 {
        var digits = field
        if digits.count >= 2, digits.prefix(2).map({ $0 | 0x20 }) == [UInt8(ascii: "a"), UInt8(ascii: "s")] { digits = digits.dropFirst(2) }
        guard (1...10).contains(digits.count), digits.allSatisfy({ (0x30...0x39).contains($0) }),
              let value = UInt32(text(of: digits)) else {
            throw LineProblem("\(Printable.quote(text(of: field))) is not an AS number (like 58224 or AS58224, at most 4294967295)")
        }
        return value
    }

    private static func parsePrefix(_ cidr: String) throws(LineProblem) -> Prefix {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPLiteral.parse(String(parts[0])) else {
            throw LineProblem("\(Printable.quote(cidr)) is not an IPv4 or IPv6 CIDR (like 192.0.2.0/24 or 2001:db8::/32)")
        }
        let maxLength = address.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard parts[1].utf8.count <= 3, parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                  let n = Int(parts[1]), n <= maxLength else {
                throw LineProblem("\(Printable.quote(cidr)): the prefix length must be a number 0...\(maxLength)")
            }
            length = n
        }
        if address.count == 4 {
            let value = address.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard value & ~mask32(length) == 0 else {
                throw LineProblem("\(Printable.quote(cidr)) has bits set below the /\(length) prefix (did you mean \(IPLiteral.format(bytes(value & mask32(length))) ?? "")/\(length)?)")
            }
            return .v4(value, length)
        }
        let high = address[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = address[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let highMask = length >= 64 ? UInt64.max : mask64(length)
        let lowMask = length <= 64 ? 0 : mask64(length - 64)
        guard high & ~highMask == 0, low & ~lowMask == 0 else {
            throw LineProblem("\(Printable.quote(cidr)) has bits set below the /\(length) prefix")
        }
        return .v6(high, low, length)
    }

    private static func trim(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }
        guard let first = s.firstIndex(where: { !blank($0) }), let last = s.lastIndex(where: { !blank($0) }) else { return [] }
        return s[first...last]
    }

    private static func text(of bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// "IR" or "IR AS58224", for errors.
    private static func describe(_ entry: UInt64) -> String {
        let asn = UInt32(truncatingIfNeeded: entry)
        return string(UInt16(truncatingIfNeeded: entry >> 32)) + (asn == 0 ? "" : " AS\(asn)")
    }

    private static func string(_ code: UInt16) -> String {
        String(decoding: [UInt8(code >> 8), UInt8(code & 0xff)], as: UTF8.self)
    }

    private static func bytes(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    /// The top `length` bits set (0...32).
    private static func mask32(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << UInt32(32 - length) }
    /// The top `length` bits set (0...64).
    private static func mask64(_ length: Int) -> UInt64 { length == 0 ? 0 : UInt64.max << UInt64(64 - length) }
}
