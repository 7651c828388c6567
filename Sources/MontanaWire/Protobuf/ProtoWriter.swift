/// A minimal proto2 encoder: fields are written in the order the caller calls, which every
/// message type here keeps in field-number order (PROTOCOL.md section 0).
public struct ProtoWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    private mutating func tag(_ field: UInt32, _ wireType: UInt8) {
        UVarint.append(UInt64(field) << 3 | UInt64(wireType), to: &bytes)
    }

    public mutating func varint(_ field: UInt32, _ value: UInt64) {
        tag(field, 0)
        UVarint.append(value, to: &bytes)
    }

    public mutating func fixed64(_ field: UInt32, _ value: UInt64) {
        tag(field, 1)
        bytes.appendLE(value)
    }

    public mutating func lengthDelimited(_ field: UInt32, _ value: [UInt8]) {
        tag(field, 2)
        UVarint.append(UInt64(value.count), to: &bytes)
        bytes += value
    }

    public mutating func string(_ field: UInt32, _ value: String) {
        lengthDelimited(field, Array(value.utf8))
    }

    // Optional helpers: emit only when set.
    public mutating func varint(_ field: UInt32, ifSet value: UInt64?) {
        if let value { varint(field, value) }
    }

    public mutating func fixed64(_ field: UInt32, ifSet value: UInt64?) {
        if let value { fixed64(field, value) }
    }

    public mutating func lengthDelimited(_ field: UInt32, ifSet value: [UInt8]?) {
        if let value { lengthDelimited(field, value) }
    }

    public mutating func string(_ field: UInt32, ifSet value: String?) {
        if let value { string(field, value) }
    }
}
