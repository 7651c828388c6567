/// The verdict on one egress request.
public enum ExitPolicyDecision: Equatable, Sendable {
    case allow
    case deny(reason: ExitPolicyDenyReason)

    public var isAllowed: Bool { self == .allow }
}

/// Why a request was refused. Raw values are metric label values: refusals are counted, never
/// logged per user (PROTOCOL.md 7.3).
public enum ExitPolicyDenyReason: String, Sendable, CaseIterable {
    /// An address (or an IPv4 address inside it) is in a built-in denied range.
    case builtinRange = "builtin_range"
    /// The port is built-in denied (SMTP).
    case port = "port"
    /// An operator `deny` entry matched the name, an address or the port.
    case operatorDeny = "operator_deny"
    /// `default-deny` mode and no operator `allow` entry covers the request.
    case defaultDeny = "default_deny"
    /// The name resolved to nothing, so there is nothing that could be checked.
    case noAddress = "no_address"
    /// The destination is the exit itself: an interface or public address, its admin listener,
    /// or a member's transit endpoint (`SelfAddresses`).
    case selfAddress = "self"
}
