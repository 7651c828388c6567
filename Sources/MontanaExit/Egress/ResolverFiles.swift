import Foundation
import NIOCore

/// `/etc/hosts` as the stub resolver uses it: names listed there are answered from the file
/// (every address of the name, both families) and never sent to a DNS server. `localhost` and
/// names under `.localhost` always resolve to loopback (RFC 6761 §6.3), listed or not.
public struct HostsFile: Sendable, Equatable {
    /// Lower-cased name (no trailing dot) → addresses in file order (4 or 16 bytes each).
    public private(set) var entries: [String: [[UInt8]]]

    /// Bytes read from a hosts file; a bigger file is read only up to here (a real one is a few KiB).
    public static let maxFileSize = 1 << 20

    public init(entries: [String: [[UInt8]]] = [:]) {
        self.entries = entries
    }

    /// Parses hosts-file text: `address name [aliases…]`, `#` comments; bad lines are skipped.
    public static func parse(_ text: String) -> HostsFile {
        var entries: [String: [[UInt8]]] = [:]
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let address = IPAddress(String(fields[0])) else { continue }
            for name in fields.dropFirst() {
                guard let labels = DNSMessage.labels(of: String(name)) else { continue }
                let key = StubResolver.key(labels)
                if !(entries[key]?.contains(address.bytes) ?? false) { entries[key, default: []].append(address.bytes) }
            }
        }
        return HostsFile(entries: entries)
    }

    /// Reads `path`; a missing or unreadable file is an empty table.
    public static func load(path: String) -> HostsFile {
        guard let handle = FileHandle(forReadingAtPath: path) else { return HostsFile() }
        defer { try? handle.close() }
        let data: Data? = try? handle.read(upToCount: maxFileSize)
        return parse(String(decoding: data ?? Data(), as: UTF8.self))
    }

    static let loopback: [[UInt8]] = [[127, 0, 0, 1], [UInt8](repeating: 0, count: 15) + [1]]

    /// The addresses for a lower-cased, dot-free-at-the-end name, or nil to ask DNS.
    public func lookup(_ key: String) -> [[UInt8]]? {
        if let listed = entries[key] { return listed }
        if key == "localhost" || key.hasSuffix(".localhost") { return Self.loopback }
        return nil
    }
}

/// The `nameserver` lines of resolv.conf, the default servers when `[dns] servers` is not set.
public enum ResolvConf {
    public static let defaultPath = "/etc/resolv.conf"
    /// Used when resolv.conf lists no usable server: systemd-resolved's stub and the IPv6 loopback.
    public static let fallbackServers = ["127.0.0.53", "::1"]
    /// resolv(5): at most 3 servers are used (MAXNS).
    public static let maxServers = 3

    /// Server addresses (port 53) from resolv.conf text; scoped (`%eth0`) addresses are skipped.
    public static func nameservers(_ text: String) -> [String] {
        var out: [String] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver", let address = IPAddress(String(fields[1])) else { continue }
            out.append(address.description)
        }
        return Array(out.prefix(maxServers))
    }

    /// The servers from `path` (port 53), or the fallbacks when it names none.
    public static func defaultServers(path: String = defaultPath) -> [SocketAddress] {
        let text = FileManager.default.contents(atPath: path).map { String(decoding: $0.prefix(HostsFile.maxFileSize), as: UTF8.self) } ?? ""
        var hosts = nameservers(text)
        if hosts.isEmpty { hosts = fallbackServers }
        return hosts.compactMap { try? SocketAddress(ipAddress: $0, port: 53) }
    }
}
