import Foundation
import MontanaExit
import NIOCore

/// The `[dns]` section: the exit's stub resolver (servers, deadline, concurrency, cache).
/// Without it the servers are the `nameserver` lines of /etc/resolv.conf and names in
/// /etc/hosts are answered from that file.
public struct DNSSettings: Sendable, Equatable {
    /// `host:port` of recursive resolvers; nil = /etc/resolv.conf (port 53).
    public var servers: [HostPort]?
    public var timeoutMilliseconds = 5000
    public var maxPerSession = 8
    public var maxInflight = 256
    public var cacheEntries = 10_000
    public var minTTLSeconds = 5
    public var maxTTLSeconds = 3600
    /// Hosts file consulted before DNS (`hosts_file`, default /etc/hosts; "" turns it off).
    public var hostsFile: String? = "/etc/hosts"

    public init() {}

    static let keys = ["servers", "timeout_ms", "max_per_session", "max_inflight", "cache_entries",
                       "min_ttl_seconds", "max_ttl_seconds", "hosts_file"]
    /// resolv(5) uses 3 servers; a few more are allowed for operators who list both families.
    static let maxServers = 8

    static func parse(_ s: ConfigSection?) throws(ConfigurationError) -> DNSSettings {
        var settings = DNSSettings()
        guard let s else { return settings }
        try s.allowOnly(keys)
        if let list = try s.strings("servers") {
            guard !list.isEmpty else { throw s.invalid("servers", "empty; list at least one \"host:port\" or leave the key out to use /etc/resolv.conf") }
            guard list.count <= maxServers else { throw s.invalid("servers", "\(list.count) servers; at most \(maxServers)") }
            var servers: [HostPort] = []
            for (i, text) in list.enumerated() {
                let key = "\(s.key("servers"))[\(i)]"
                let parsed: HostPort
                do {
                    parsed = try HostPort(parsing: text)
                } catch {
                    throw .invalidValue(file: s.file, key: key, problem: "\"\(text)\" is not host:port (\(error))")
                }
                // The resolver must not itself need a resolver.
                guard IPAddress(parsed.host) != nil else {
                    throw .invalidValue(file: s.file, key: key, problem: "\"\(parsed.host)\" is not an IP address (a DNS server is given by address)")
                }
                guard parsed.port > 0 else { throw .invalidValue(file: s.file, key: key, problem: "port 0 is not a DNS server port") }
                servers.append(parsed)
            }
            settings.servers = servers
        }
        // 100 ms is the shortest deadline that survives one retransmission; 60 s is longer than
        // any resolver keeps trying.
        if let v = try s.int("timeout_ms", in: 100...60_000) { settings.timeoutMilliseconds = v }
        if let v = try s.int("max_per_session", in: 1...1024) { settings.maxPerSession = v }
        if let v = try s.int("max_inflight", in: 1...65_536) { settings.maxInflight = v }
        if let v = try s.int("cache_entries", in: 0...10_000_000) { settings.cacheEntries = v }
        if let v = try s.int("min_ttl_seconds", in: 0...86_400) { settings.minTTLSeconds = v }
        if let v = try s.int("max_ttl_seconds", in: 1...604_800) { settings.maxTTLSeconds = v }
        if settings.minTTLSeconds > settings.maxTTLSeconds {
            throw s.invalid("min_ttl_seconds", "\(settings.minTTLSeconds) exceeds max_ttl_seconds (\(settings.maxTTLSeconds))")
        }
        if settings.maxPerSession > settings.maxInflight {
            throw s.invalid("max_per_session", "\(settings.maxPerSession) exceeds max_inflight (\(settings.maxInflight))")
        }
        if let path = try s.string("hosts_file") {
            settings.hostsFile = path.isEmpty ? nil : s.resolve(path)
        }
        return settings
    }

    /// The resolver configuration: servers resolved now (resolv.conf and the hosts file are read once, at start).
    public func resolverConfiguration() -> StubResolverConfiguration {
        let addresses: [SocketAddress]
        if let servers {
            addresses = servers.compactMap { try? SocketAddress(ipAddress: $0.host, port: $0.port) }
        } else {
            addresses = ResolvConf.defaultServers()
        }
        var c = StubResolverConfiguration(servers: addresses)
        c.timeout = .milliseconds(Int64(timeoutMilliseconds))
        c.maxPerSession = maxPerSession
        c.maxInflight = maxInflight
        c.cacheEntries = cacheEntries
        c.minTTL = UInt32(clamping: minTTLSeconds)
        c.maxTTL = UInt32(clamping: maxTTLSeconds)
        c.hosts = hostsFile.map { HostsFile.load(path: $0) } ?? HostsFile()
        return c
    }
}
