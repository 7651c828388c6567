/// Why a multistream-select negotiation failed; the caller resets the stream.
public enum MultistreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The length prefix is not a valid uvarint.
    case malformedLength
    case emptyLine
    case lineTooLong(length: UInt64, limit: Int)
    case missingNewline
    /// A line holds something other than printable ASCII.
    case invalidCharacters
    /// The peer's first line is not `/multistream/1.0.0`.
    case unexpectedHeader(String)
    /// The listener answered neither the protocol echo nor `na`.
    case unexpectedResponse(String)
    /// A protocol name given to the dialer cannot be sent (empty, too long or not printable ASCII).
    case invalidProtocolName(String)

    public var description: String {
        switch self {
        case .malformedLength: return "multistream: malformed length prefix"
        case .emptyLine: return "multistream: empty message"
        case .lineTooLong(let length, let limit): return "multistream: line of \(length) bytes, limit \(limit)"
        case .missingNewline: return "multistream: line does not end in a newline"
        case .invalidCharacters: return "multistream: line is not printable ASCII"
        case .unexpectedHeader(let line): return "multistream: expected /multistream/1.0.0, got \(line)"
        case .unexpectedResponse(let line): return "multistream: expected protocol echo or na, got \(line)"
        case .invalidProtocolName(let name): return "multistream: invalid protocol name \(name)"
        }
    }
}
