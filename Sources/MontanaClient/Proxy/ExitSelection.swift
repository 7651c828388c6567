import MontanaWire

/// Which exit a proxied connection should leave through, chosen by the proxy username
/// (e.g. `socks5h://country-de:x@127.0.0.1:1080`), so one local port serves every exit.
public enum ExitSelection: Equatable, Sendable {
    case automatic
    /// An assigned ISO 3166-1 alpha-2 code, upper-case.
    case country(String)
    /// Lower-case hex prefix (8...64 digits) of the exit's node id.
    case node(prefixHex: String)

    public static let minimumNodePrefixDigits = 8
    public static let nodeIDHexDigits = 64

    /// `auto` or empty -> automatic, `country-XX`, `node-<hex>`; the prefixes are case-insensitive.
    public static func parse(username: String) throws(ExitSelectionError) -> ExitSelection {
        let lower = username.lowercased()
        if lower.isEmpty || lower == "auto" { return .automatic }
        if lower.hasPrefix("country-") {
            let code = String(username.dropFirst("country-".count)).uppercased()
            guard code.utf8.count == 2, CountryCode.isAssigned(code) else { throw .unknownCountry(username: username) }
            return .country(code)
        }
        if lower.hasPrefix("node-") {
            let prefix = String(lower.dropFirst("node-".count))
            guard (minimumNodePrefixDigits...nodeIDHexDigits).contains(prefix.utf8.count),
                  prefix.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw .invalidNodePrefix(username: username)
            }
            return .node(prefixHex: prefix)
        }
        throw .unrecognized(username: username)
    }
}

/// A proxy username that is not an exit selection; the proxy answers with an auth failure
/// and logs this description.
public enum ExitSelectionError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownCountry(username: String)
    case invalidNodePrefix(username: String)
    case unrecognized(username: String)

    public var description: String {
        switch self {
        case .unknownCountry(let username):
            return "proxy username \"\(username)\": not an assigned ISO 3166-1 alpha-2 country code (e.g. country-de)"
        case .invalidNodePrefix(let username):
            return "proxy username \"\(username)\": node- needs 8 to 64 hex digits of the exit's node id"
        case .unrecognized(let username):
            return "proxy username \"\(username)\" is not an exit selection: use auto, country-XX or node-<hex node id prefix>"
        }
    }
}
