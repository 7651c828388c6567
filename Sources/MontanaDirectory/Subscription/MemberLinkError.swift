/// Why a `montana://` link was refused. Every message names the part of the link (`alliance`,
/// `host`, `port`, or a query key such as `kem`) and the problem, never the whole link.
public enum MemberLinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Longer than `MemberLink.maxLength` characters.
    case tooLong(length: Int, limit: Int)
    /// Does not start with `montana://`.
    case notAMemberLink
    /// A required part or query key is absent.
    case missing(String)
    /// A part or query key is present but wrong.
    case invalid(String, problem: String)

    public var description: String {
        switch self {
        case .tooLong(let length, let limit): return "member link: is \(length) characters, limit \(limit)"
        case .notAMemberLink: return "member link: must start with montana://"
        case .missing(let part): return "member link: \(part): missing"
        case .invalid(let part, let problem): return "member link: \(part): \(problem)"
        }
    }
}
