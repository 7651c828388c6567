/// A rejected exit policy setting, naming the config field and the offending value.
public enum ExitPolicyConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidEntry(field: String, entry: String, problem: ExitPolicyEntryError)
    case invalidMode(field: String, value: String)

    public var description: String {
        switch self {
        case .invalidEntry(let field, let entry, let problem):
            return "invalid entry \"\(entry)\" in \(field): \(problem)"
        case .invalidMode(let field, let value):
            return "invalid \(field) \"\(value)\": expected \"\(ExitPolicyMode.defaultAllow.rawValue)\" or \"\(ExitPolicyMode.defaultDeny.rawValue)\""
        }
    }
}
