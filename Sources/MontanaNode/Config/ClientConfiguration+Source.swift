import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The local address the client binds its outgoing carrier connections to (`[client] source`
/// in client.toml, `montana client --source`, `montana demo --client-source`): an IPv4 or IPv6
/// literal without a port (the port stays ephemeral).
public struct ClientSourceAddress: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public let address: SocketAddress

    /// Why `text` cannot be a source address; the caller prefixes file and key, or the flag.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public init(parsing text: String) throws(Invalid) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        do {
            address = try SocketAddress(ipAddress: trimmed, port: 0)
        } catch {
            throw Invalid(description: "\"\(text)\" is not an IPv4 or IPv6 address (a local address to send from, without a port)")
        }
        self.text = trimmed
    }

    public var description: String { text }

    /// nil when a TCP socket can be bound to this address here; else why not (e.g. the address
    /// is not on any interface), so a bad source fails at start, not on every connection.
    public func bindProblem() -> String? {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: return "not an IP address"
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket(): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        let result = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        return result == 0 ? nil : "cannot bind \(text): \(String(cString: strerror(errno)))"
    }

    public static func == (a: ClientSourceAddress, b: ClientSourceAddress) -> Bool { a.text == b.text }
}
