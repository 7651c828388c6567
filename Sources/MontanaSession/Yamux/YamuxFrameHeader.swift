import NIOCore

/// The yamux frame type (second header byte).
public enum YamuxFrameType: UInt8, Sendable {
    case data = 0
    case windowUpdate = 1
    case ping = 2
    case goAway = 3
}

/// Header flags (u16 BE). Several may be set at once, e.g. SYN on a first data frame with FIN.
public struct YamuxFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let syn = YamuxFlags(rawValue: 1)
    public static let ack = YamuxFlags(rawValue: 2)
    public static let fin = YamuxFlags(rawValue: 4)
    public static let rst = YamuxFlags(rawValue: 8)
}

/// The 12-byte yamux header: `version u8 ‖ type u8 ‖ flags u16 BE ‖ stream id u32 BE ‖ length u32 BE`.
/// `length` is the body size for data, the window delta for window updates, the opaque value for
/// pings and the error code for go-away.
public struct YamuxFrameHeader: Hashable, Sendable {
    public static let size = 12
    /// The only version the spec defines.
    public static let version: UInt8 = 0

    public var type: YamuxFrameType
    public var flags: YamuxFlags
    public var streamID: UInt32
    public var length: UInt32

    public init(type: YamuxFrameType, flags: YamuxFlags, streamID: UInt32, length: UInt32) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.length = length
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.version)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(flags.rawValue, endianness: .big)
        buffer.writeInteger(streamID, endianness: .big)
        buffer.writeInteger(length, endianness: .big)
    }

    /// Reads a header from the front of `buffer`. Returns nil (consuming nothing) when fewer than 12
    /// bytes are readable; throws on an unknown version or type (a yamux protocol error).
    public static func decode(from buffer: inout ByteBuffer) throws(YamuxError) -> YamuxFrameHeader? {
        guard buffer.readableBytes >= size,
              let version = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let rawType = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self),
              let flags = buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: UInt16.self),
              let streamID = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .big, as: UInt32.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 8, endianness: .big, as: UInt32.self)
        else { return nil }
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard let type = YamuxFrameType(rawValue: rawType) else { throw .unknownFrameType(rawType) }
        buffer.moveReaderIndex(forwardBy: size)
        return YamuxFrameHeader(type: type, flags: YamuxFlags(rawValue: flags), streamID: streamID, length: length)
    }
}
