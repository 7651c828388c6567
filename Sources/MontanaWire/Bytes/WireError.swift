/// Why a byte string was rejected. Decoders never trap; they throw one of these.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case trailingBytes(Int)
    case tooLong(field: String, length: Int, limit: Int)
    case invalidValue(field: String, value: UInt64)
    case invalidField(String)
    case missingField(String)
    case unknownType(UInt8)
    case varintOverflow
    case unsupportedWireType(UInt8)

    public var description: String {
        switch self {
        case .truncated: return "message is truncated"
        case .trailingBytes(let n): return "\(n) unexpected trailing byte(s)"
        case .tooLong(let field, let length, let limit): return "\(field) is \(length) bytes, limit \(limit)"
        case .invalidValue(let field, let value): return "invalid \(field) value \(value)"
        case .invalidField(let field): return "invalid \(field)"
        case .missingField(let field): return "missing required field \(field)"
        case .unknownType(let t): return "unknown message type 0x\(String(t, radix: 16))"
        case .varintOverflow: return "varint longer than 64 bits"
        case .unsupportedWireType(let t): return "unsupported protobuf wire type \(t)"
        }
    }
}
