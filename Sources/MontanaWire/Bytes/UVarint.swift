/// Unsigned LEB128, as in protobuf and multiformats.
public enum UVarint {
    public static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        append(value, to: &out)
        return out
    }

    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Decodes from the front of `bytes`. Returns nil when more bytes are needed.
    /// Throws when the varint can never be valid (longer than 10 bytes or over 64 bits).
    public static func decode<C: Collection>(_ bytes: C) throws(WireError) -> (value: UInt64, length: Int)?
    where C.Element == UInt8 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var length = 0
        for byte in bytes {
            length += 1
            if shift == 63 && byte > 1 { throw .varintOverflow }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return (value, length) }
            shift += 7
            if shift > 63 { throw .varintOverflow }
        }
        return nil
    }
}

extension ByteReader {
    public mutating func readUVarint() throws(WireError) -> UInt64 {
        guard let (value, length) = try UVarint.decode(bytes[offset...]) else { throw .truncated }
        _ = try readBytes(length)
        return value
    }
}
