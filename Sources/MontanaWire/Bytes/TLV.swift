/// `type u8 ‖ u16 LE len ‖ value` lists, used in handshake payloads. Unknown types are kept
/// (callers ignore what they do not understand).
public struct TLV: Equatable, Sendable {
    public var type: UInt8
    public var value: [UInt8]

    public init(type: UInt8, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    public static func encode(_ items: [TLV]) -> [UInt8] {
        var out: [UInt8] = []
        for item in items {
            precondition(item.value.count <= Int(UInt16.max), "TLV value over 65535 bytes")
            out.append(item.type)
            out.appendLE(UInt16(item.value.count))
            out += item.value
        }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> [TLV] {
        var reader = ByteReader(bytes)
        var items: [TLV] = []
        while !reader.isAtEnd {
            let type = try reader.readU8()
            let length = Int(try reader.readLE(UInt16.self))
            items.append(TLV(type: type, value: try reader.readBytes(length)))
        }
        return items
    }
}

/// The TLV types of Noise_PQ XX payloads (PROTOCOL.md section 4).
public enum PayloadTLV {
    public static let features: UInt8 = 0x01
    public static let egressAuth: UInt8 = 0x02
    public static let observedAddress: UInt8 = 0x03

    /// Bit 0 of the features TLV.
    public static let featureResumable: UInt32 = 1
}
