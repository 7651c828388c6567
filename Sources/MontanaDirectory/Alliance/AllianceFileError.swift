/// Why an alliance file (alliance.json, alliance.secret, an endorsement file) was refused.
/// Every message names the file, then the JSON key, then the problem: `FILE: KEY: problem`,
/// so an operator can fix the right line without reading code.
public enum AllianceFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read or written.
    case io(file: String, problem: String)
    /// A secret file that group or others may read (any of mode bits 0o077 set).
    case tooOpen(file: String, mode: UInt32)
    /// The file exists and overwriting was not asked for.
    case exists(file: String)
    /// The JSON is readable but a field is missing or wrong.
    case invalid(file: String, key: String, problem: String)

    public var file: String {
        switch self {
        case .io(let f, _), .tooOpen(let f, _), .exists(let f), .invalid(let f, _, _): return f
        }
    }

    public var description: String {
        switch self {
        case .io(let f, let why): return "\(f): \(why)"
        case .tooOpen(let f, let mode):
            return "\(f): secret file is readable by group or others (mode \(String(mode, radix: 8))); run `chmod 600 \(f)`"
        case .exists(let f): return "\(f): already exists; refusing to overwrite it (remove it first, or pass --force)"
        case .invalid(let f, let key, let why): return "\(f): \(key): \(why)"
        }
    }
}
