/// What happens to a request that no operator entry and no built-in denial decides.
public enum ExitPolicyMode: String, Sendable, CaseIterable {
    case defaultAllow = "default-allow"
    case defaultDeny = "default-deny"
}
