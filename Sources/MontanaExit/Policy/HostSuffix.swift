/// A DNS name suffix: `example.com` (or `.example.com`, `*.example.com`) matches `example.com`
/// itself and every name under it, case-insensitively, ignoring a trailing root dot.
public struct HostSuffix: Hashable, Sendable {
    /// Lower-case, without leading or trailing dots.
    public let name: String

    public init?(_ text: String) {
        var name = text.lowercased()
        if name.hasPrefix("*.") { name.removeFirst(2) } else if name.hasPrefix(".") { name.removeFirst() }
        if name.hasSuffix(".") { name.removeLast() }
        guard HostSuffix.isValidName(name) else { return nil }
        self.name = name
    }

    public func matches(normalizedHost host: String) -> Bool {
        host == name || (host.hasSuffix(name) && host.utf8.dropLast(name.utf8.count).last == UInt8(ascii: "."))
    }

    /// What `matches(normalizedHost:)` expects: lower-case without the trailing root dot.
    public static func normalize(host: String) -> String {
        let lower = host.lowercased()
        return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }

    /// Letters, digits, `-` and `_` in dot-separated labels of 1...63 bytes, at most 253 in all.
    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            (1...63).contains(label.count) && label.allSatisfy { c in
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                    || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
            }
        }
    }
}

extension HostSuffix: CustomStringConvertible {
    public var description: String { name }
}
