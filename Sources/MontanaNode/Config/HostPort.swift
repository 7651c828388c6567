/// A configured socket address: `host:port`, `[v6]:port`. The host is kept as written (a name
/// or a literal, without brackets) and resolved by whoever binds or dials it.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[ipv6]:port` with a port in 1...65535.
    public init(parsing text: String) throws(HostPortError) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .unclosedBracket }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .missingPort }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .missingPort }
            hostPart = text[..<colon]
            guard !hostPart.contains(":") else { throw .unbracketedIPv6 }
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw .emptyHost }
        guard hostPart.unicodeScalars.allSatisfy(Self.isHostCharacter) else { throw .invalidHost }
        guard let port = Int(portPart), (1...65535).contains(port) else { throw .invalidPort }
        self.init(host: String(hostPart), port: port)
    }

    private static func isHostCharacter(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "-", "_", ":", "%": return true
        default: return false
        }
    }

    /// True for addresses only this machine can reach; the admin API should be one.
    public var isLoopback: Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// True for the "every interface" addresses, which nobody else can dial.
    public var isWildcard: Bool { host == "0.0.0.0" || host == "::" }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a string is not `host:port`; the description completes "is not host:port (…)".
public enum HostPortError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingPort
    case invalidPort
    case emptyHost
    case invalidHost
    case unbracketedIPv6
    case unclosedBracket

    public var description: String {
        switch self {
        case .missingPort: return "missing :port"
        case .invalidPort: return "port must be 1-65535"
        case .emptyHost: return "host is empty"
        case .invalidHost: return "host may contain only letters, digits, '.', '-', '_' and IPv6 literals"
        case .unbracketedIPv6: return "write an IPv6 address in brackets, e.g. [::1]:7443"
        case .unclosedBracket: return "missing ']' after the IPv6 address"
        }
    }
}
