/// Why one allow/deny entry could not be read; `ExitPolicyConfigurationError` adds which list.
public enum ExitPolicyEntryError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case invalidIPv4Address
    case invalidIPv6Address
    case invalidPrefixLength(String)
    case prefixLengthOutOfRange(Int)
    case hostBitsSet(suggestion: String)
    case invalidPort(String)
    case reversedPortRange
    case invalidHostSuffix
    /// A host name in `allow_private`: names cannot re-open private ranges (DNS rebinding).
    case hostSuffixCannotReopen

    public var description: String {
        switch self {
        case .empty: return "empty entry"
        case .invalidIPv4Address: return "not a valid IPv4 address"
        case .invalidIPv6Address: return "not a valid IPv6 address"
        case .invalidPrefixLength(let text): return "prefix length \"\(text)\" is not a number"
        case .prefixLengthOutOfRange(let length): return "prefix length \(length) out of range"
        case .hostBitsSet(let suggestion): return "address has bits set beyond the prefix (did you mean \(suggestion)?)"
        case .invalidPort(let text): return "port \"\(text)\" is not a number from 1 to 65535"
        case .reversedPortRange: return "port range runs backwards (write low-high)"
        case .hostSuffixCannotReopen:
            return "allow_private takes address ranges and ports only: a host name could resolve to any private address (DNS rebinding)"
        case .invalidHostSuffix: return "not a CIDR, port, port range or host name (letters, digits, '-', '_' and dots)"
        }
    }
}
