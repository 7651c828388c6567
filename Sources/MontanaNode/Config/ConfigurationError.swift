/// A rejected configuration file. Every case names the file and, where there is one, the dotted
/// key (`listen.transit`, `exit.allow[2]`, `peers[1].kem_pk`; array indices count from 0), so the
/// operator can go straight to the line to fix.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)
    /// The file is not valid TOML.
    case syntax(file: String, line: Int, column: Int, message: String)
    /// A key the schema does not have; `suggestion` is the closest known key, if one is close.
    case unknownKey(file: String, key: String, suggestion: String?)
    case missingKey(file: String, key: String)
    case wrongType(file: String, key: String, expected: String, found: String)
    case invalidValue(file: String, key: String, problem: String)

    public var file: String {
        switch self {
        case .unreadable(let file, _), .syntax(let file, _, _, _), .unknownKey(let file, _, _),
             .missingKey(let file, _), .wrongType(let file, _, _, _), .invalidValue(let file, _, _):
            return file
        }
    }

    /// The dotted key at fault, or nil when the whole file is.
    public var key: String? {
        switch self {
        case .unreadable, .syntax: return nil
        case .unknownKey(_, let key, _), .missingKey(_, let key), .wrongType(_, let key, _, _), .invalidValue(_, let key, _):
            return key
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .syntax(let file, let line, let column, let message):
            return "\(file):\(line):\(column): not valid TOML: \(message)"
        case .unknownKey(let file, let key, let suggestion):
            let hint = suggestion.map { " (did you mean \($0)?)" } ?? ""
            return "\(file): \(key): unknown key\(hint)"
        case .missingKey(let file, let key):
            return "\(file): \(key): required but missing"
        case .wrongType(let file, let key, let expected, let found):
            return "\(file): \(key): expected \(expected), found \(found)"
        case .invalidValue(let file, let key, let problem):
            return "\(file): \(key): \(problem)"
        }
    }
}
