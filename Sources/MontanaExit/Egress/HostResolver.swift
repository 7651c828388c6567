import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Address helpers. Egress names are resolved by `StubResolver` (non-blocking UDP DNS with
/// deadlines and limits), never by getaddrinfo on a shared thread pool. `resolveBlocking` is
/// only for the node's own configured names (e.g. its public host for the self-address denial),
/// on a thread of the caller's choosing, never for user input.
public enum HostResolver {
    public static func resolveBlocking(_ host: String) throws -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        guard rc == 0, let first = result else { throw ResolveError.failed(host) }
        defer { freeaddrinfo(first) }
        var out: [[UInt8]] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor?.pointee {
            if info.ai_family == AF_INET, let sa = info.ai_addr {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin_addr) { out.append(Array($0)) }
                }
            } else if info.ai_family == AF_INET6, let sa = info.ai_addr {
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin6_addr) { out.append(Array($0)) }
                }
            }
            cursor = info.ai_next
        }
        // Keep order, drop duplicates (one entry per socket type is typical).
        var seen = Set<[UInt8]>()
        return out.filter { seen.insert($0).inserted }
    }

    public enum ResolveError: Error, CustomStringConvertible {
        case failed(String)
        public var description: String { "name did not resolve" }
    }

    /// The socket address for raw 4- or 16-byte address bytes.
    public static func socketAddress(_ bytes: [UInt8], port: Int) throws -> SocketAddress {
        guard let address = IPAddress(bytes: bytes) else { throw ResolveError.failed("address of \(bytes.count) bytes") }
        return try SocketAddress(ipAddress: address.description, port: port)
    }
}
