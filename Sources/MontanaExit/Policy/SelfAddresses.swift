import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The exit's own addresses, which egress must never reach (PROTOCOL.md 7.3): a client of the
/// exit must not get at its admin API, at services trusting `lo` or the host's own addresses,
/// or at a member's transit port from this member's address (members are exempt from
/// per-source limits there).
///
/// Two kinds of entry, consulted by `ExitPolicy` for every resolved address:
/// - **hosts**: the node's interface addresses (`getifaddrs`), its `public_host` and a specific
///   `listen.transit` host: denied on every port, unless an `allow_private` network covers the
///   address (the demo re-opens 127.0.0.1 that way for its local site).
/// - **endpoints** (host *and* port): the admin listener, the node's own transit listener and
///   every member's transit endpoint: denied even where the host is allowed, unless
///   `allow_private` names both the address (a network) and the port (a port range).
///   An endpoint bound to a wildcard (0.0.0.0, `::`) is reachable on every local address, so its
///   port is denied on every host entry, on loopback and on the unspecified address; a
///   destination of 0.0.0.0 or `::` reaches this machine, so it matches every endpoint's port.
///
/// Thread-safe; the node refreshes it from a background timer (`SelfAddressMonitor`) and the
/// policy reads one consistent snapshot per check under a lock held for a few set look-ups.
public final class SelfAddresses: Sendable {
    /// One listening endpoint; a wildcard address stands for every local address.
    public struct Endpoint: Hashable, Sendable {
        public let address: IPAddress
        public let port: UInt16

        public init(address: IPAddress, port: UInt16) {
            self.address = address
            self.port = port
        }
    }

    /// Which entry matched, for tests and diagnostics (never logged with the address).
    public enum Match: Equatable, Sendable {
        case host
        case endpoint
    }

    struct Snapshot: Sendable {
        var interfaces: Set<IPAddress> = []
        var hosts: Set<IPAddress> = []
        var endpoints: Set<Endpoint> = []
        var wildcardPorts: Set<UInt16> = []
        var ports: Set<UInt16> = []
    }

    private let box = NIOLockedValueBox(Snapshot())

    public init() {}

    /// Replaces the interface addresses (from `interfaceAddresses()`).
    public func setInterfaces(_ addresses: Set<IPAddress>) {
        box.withLockedValue { $0.interfaces = addresses }
    }

    /// Replaces the configured entries: the node's own hosts and the denied endpoints.
    public func setConfigured(hosts: Set<IPAddress>, endpoints: Set<Endpoint>) {
        box.withLockedValue { snapshot in
            snapshot.hosts = hosts
            snapshot.endpoints = endpoints.filter { !$0.address.isUnspecified }
            snapshot.wildcardPorts = Set(endpoints.filter { $0.address.isUnspecified }.map(\.port))
            snapshot.ports = Set(endpoints.map(\.port))
        }
    }

    public var interfaces: Set<IPAddress> { box.withLockedValue { $0.interfaces } }
    public var hosts: Set<IPAddress> { box.withLockedValue { $0.hosts } }

    /// Whether connecting to `address`:`port` would reach this node itself. Callers pass each
    /// view of a destination (the address and the IPv4 addresses it embeds) separately.
    public func match(_ address: IPAddress, port: UInt16) -> Match? {
        box.withLockedValue { s in
            let isLocal = address.isLoopback || address.isUnspecified || s.interfaces.contains(address) || s.hosts.contains(address)
            if s.ports.contains(port) {
                if s.endpoints.contains(Endpoint(address: address, port: port)) { return .endpoint }
                if s.wildcardPorts.contains(port), isLocal { return .endpoint }
                // 0.0.0.0 / :: as a destination is this machine: whatever listens on the port.
                if address.isUnspecified { return .endpoint }
            }
            if s.interfaces.contains(address) || s.hosts.contains(address) { return .host }
            return nil
        }
    }

    /// The addresses of every interface that is up, via `getifaddrs` (a netlink round trip:
    /// call it off the event loop). IPv6 zone ids are dropped; link-local ones are built-in
    /// denied anyway.
    public static func interfaceAddresses() -> Set<IPAddress> {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(first) }
        var out = Set<IPAddress>()
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor?.pointee {
            defer { cursor = entry.ifa_next }
            guard let sa = entry.ifa_addr else { continue }
            switch Int32(sa.pointee.sa_family) {
            case AF_INET:
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin_addr) { if let a = IPAddress(bytes: $0) { out.insert(a) } }
                }
            case AF_INET6:
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin6_addr) { if let a = IPAddress(bytes: $0) { out.insert(a) } }
                }
            default:
                continue
            }
        }
        return out
    }
}

/// Where the node's own addresses come from, as written in its configuration: hosts are IP
/// literals or DNS names (names are resolved on every refresh).
public struct SelfAddressSources: Sendable, Equatable {
    public struct HostPort: Sendable, Equatable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// `public_host` and a specific `listen.transit` host: the node itself, every port.
    public var hosts: [String]
    /// The admin listener, the node's transit listener and every member's transit endpoint.
    public var endpoints: [HostPort]

    public init(hosts: [String] = [], endpoints: [HostPort] = []) {
        self.hosts = hosts
        self.endpoints = endpoints
    }
}

/// Keeps a `SelfAddresses` current: re-reads the interface addresses and re-resolves the
/// configured names every `interval` on a private dispatch queue, never on an event loop
/// (`getifaddrs` and `getaddrinfo` block). A name that fails to resolve keeps the addresses it
/// had, so a DNS hiccup never opens a hole.
public final class SelfAddressMonitor: Sendable {
    /// Interfaces change rarely (DHCP renewals, a new VPN interface); 60 s bounds how long a
    /// new address stays reachable through the exit, at one netlink dump a minute.
    public static let defaultInterval: TimeInterval = 60

    public let addresses: SelfAddresses
    private let interval: TimeInterval
    private let queue = DispatchQueue(label: "montana.self-addresses")
    /// libdispatch sources are thread-safe (resume/cancel from any thread); Swift just does not know.
    private struct TimerHandle: @unchecked Sendable {
        let source: any DispatchSourceTimer
    }
    private struct State: Sendable {
        var sources = SelfAddressSources()
        var resolved: [String: Set<IPAddress>] = [:]
        var timer: TimerHandle?
    }
    private let state = NIOLockedValueBox(State())

    public init(addresses: SelfAddresses, interval: TimeInterval = SelfAddressMonitor.defaultInterval) {
        self.addresses = addresses
        self.interval = interval
    }

    /// Sets the sources and applies every IP literal among them at once (no DNS, no syscalls
    /// beyond `getifaddrs`), so the policy covers them before the first timer tick.
    public func update(_ sources: SelfAddressSources) {
        state.withLockedValue { $0.sources = sources }
        refresh(resolveNames: false)
    }

    /// Starts the periodic refresh; the first full refresh (with names) runs at once, async.
    public func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now(), repeating: interval)
        timer.setEventHandler { [weak self] in self?.refresh(resolveNames: true) }
        let previous = state.withLockedValue { s -> TimerHandle? in
            defer { s.timer = TimerHandle(source: timer) }
            return s.timer
        }
        previous?.source.cancel()
        timer.resume()
    }

    public func stop() {
        let timer = state.withLockedValue { s -> TimerHandle? in
            defer { s.timer = nil }
            return s.timer
        }
        timer?.source.cancel()
    }

    /// One refresh, on the caller's thread: interface addresses plus the configured entries.
    /// The entries are computed under the state lock from the *current* sources, so a refresh
    /// that resolved names for older sources cannot overwrite a newer `update`.
    public func refresh(resolveNames: Bool) {
        addresses.setInterfaces(SelfAddresses.interfaceAddresses())
        var lookups: [String: Set<IPAddress>] = [:]
        if resolveNames {
            let sources = state.withLockedValue { $0.sources }
            let names = Set((sources.hosts + sources.endpoints.map(\.host)).filter { IPAddress(Self.unbracketed($0)) == nil })
            for name in names {
                let found = Self.resolveBlocking(name)
                if !found.isEmpty { lookups[name] = found }
            }
        }
        let target = addresses
        state.withLockedValue { s in
            s.resolved.merge(lookups) { _, new in new }
            let resolved = s.resolved
            func addresses(of host: String) -> Set<IPAddress> {
                if let literal = IPAddress(Self.unbracketed(host)) { return [literal] }
                return resolved[host] ?? []
            }
            let hosts = Set(s.sources.hosts.flatMap(addresses(of:)))
            var endpoints = Set<SelfAddresses.Endpoint>()
            for endpoint in s.sources.endpoints {
                // Port 0 (bind to any port) is not an endpoint yet; the node updates it once bound.
                guard let port = UInt16(exactly: endpoint.port), port != 0 else { continue }
                for address in addresses(of: endpoint.host) {
                    endpoints.insert(SelfAddresses.Endpoint(address: address, port: port))
                }
            }
            target.setConfigured(hosts: hosts, endpoints: endpoints)
        }
    }

    /// getaddrinfo, on the monitor's own queue only: a lookup that hangs delays this refresh
    /// (and the next ticks, which coalesce) but never an event loop or a user's egress.
    static func resolveBlocking(_ host: String) -> Set<IPAddress> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out = Set<IPAddress>()
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor?.pointee {
            defer { cursor = info.ai_next }
            guard let sa = info.ai_addr else { continue }
            if info.ai_family == AF_INET {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin_addr) { if let a = IPAddress(bytes: $0) { out.insert(a) } }
                }
            } else if info.ai_family == AF_INET6 {
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin6_addr) { if let a = IPAddress(bytes: $0) { out.insert(a) } }
                }
            }
        }
        return out
    }

    /// `[::1]` → `::1`; any other host unchanged. Also used by `MemberEndpoints`.
    static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }
}
