/// One field of a protobuf message as read from the wire.
public enum ProtoValue: Equatable, Sendable {
    case varint(UInt64)
    case fixed64(UInt64)
    case lengthDelimited([UInt8])
    case fixed32(UInt32)
}

/// A minimal proto2 decoder. It yields every field in wire order; message decoders keep the last
/// value of a singular field and skip unknown fields, as protobuf requires. Groups (wire types 3/4)
/// are rejected: no message here uses them.
public struct ProtoReader {
    private var reader: ByteReader

    public init(_ bytes: [UInt8]) {
        reader = ByteReader(bytes)
    }

    public mutating func next() throws(WireError) -> (field: UInt32, value: ProtoValue)? {
        if reader.isAtEnd { return nil }
        let key = try reader.readUVarint()
        let wireType = UInt8(key & 7)
        let fieldNumber = key >> 3
        guard fieldNumber >= 1, fieldNumber <= 0x1fff_ffff else { throw .invalidValue(field: "protobuf field number", value: fieldNumber) }
        let field = UInt32(fieldNumber)
        switch wireType {
        case 0: return (field, .varint(try reader.readUVarint()))
        case 1: return (field, .fixed64(try reader.readLE(UInt64.self)))
        case 2:
            let length = try reader.readUVarint()
            guard length <= UInt64(reader.remaining) else { throw .truncated }
            return (field, .lengthDelimited(try reader.readBytes(Int(length))))
        case 5: return (field, .fixed32(try reader.readLE(UInt32.self)))
        default: throw .unsupportedWireType(wireType)
        }
    }

    /// Calls `body` for each field; `body` ignores numbers it does not know.
    public static func forEachField(_ bytes: [UInt8], _ body: (UInt32, ProtoValue) throws(WireError) -> Void) throws(WireError) {
        var r = ProtoReader(bytes)
        while let (field, value) = try r.next() { try body(field, value) }
    }
}

extension ProtoValue {
    public func asVarint(_ name: String) throws(WireError) -> UInt64 {
        guard case .varint(let v) = self else { throw .invalidField("\(name): expected varint") }
        return v
    }

    public func asUInt32(_ name: String) throws(WireError) -> UInt32 {
        let v = try asVarint(name)
        guard v <= UInt64(UInt32.max) else { throw .invalidValue(field: name, value: v) }
        return UInt32(v)
    }

    public func asFixed64(_ name: String) throws(WireError) -> UInt64 {
        guard case .fixed64(let v) = self else { throw .invalidField("\(name): expected fixed64") }
        return v
    }

    public func asBytes(_ name: String) throws(WireError) -> [UInt8] {
        guard case .lengthDelimited(let v) = self else { throw .invalidField("\(name): expected bytes") }
        return v
    }

    public func asString(_ name: String) throws(WireError) -> String {
        let bytes = try asBytes(name)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw .invalidField("\(name): not UTF-8") }
        return s
    }
}
