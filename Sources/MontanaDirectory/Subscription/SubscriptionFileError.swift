/// Why a pass file or subscription document was refused: `FILE: KEY: problem`, like the
/// alliance files, so the operator (or a client showing the error) knows which field to fix.
/// For a fetched document FILE is its URL.
public enum SubscriptionFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read or written.
    case io(file: String, problem: String)
    /// A field is missing or wrong (`key` is a path such as `bootstrap[0].link`).
    case invalid(file: String, key: String, problem: String)

    public var file: String {
        switch self {
        case .io(let f, _), .invalid(let f, _, _): return f
        }
    }

    public var description: String {
        switch self {
        case .io(let f, let why): return "\(f): \(why)"
        case .invalid(let f, let key, let why): return "\(f): \(key): \(why)"
        }
    }
}
