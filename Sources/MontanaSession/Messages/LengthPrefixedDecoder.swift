import MontanaWire
import NIOCore

/// Why a length-prefixed stream was rejected; the caller resets the stream.
public enum LengthPrefixError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformedLength
    case messageTooLarge(length: UInt64, limit: Int)

    public var description: String {
        switch self {
        case .malformedLength: return "length prefix is not a valid uvarint"
        case .messageTooLarge(let length, let limit): return "message of \(length) bytes, limit \(limit)"
        }
    }
}

/// Cuts the bytes of a `/montana/*` stream into `uvarint len ‖ message` messages.
/// Memory stays bounded by one message as long as the caller drains `nextMessage` after each `append`.
public struct LengthPrefixedDecoder: Sendable {
    /// The largest egress message: EgressData carrying 65519 bytes, with room to spare.
    public static let defaultMaxMessageSize = 65536 + 16

    public let maxMessageSize: Int
    private var buffer = ByteBuffer()

    public init(maxMessageSize: Int = LengthPrefixedDecoder.defaultMaxMessageSize) {
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes held that do not yet form a complete message.
    public var bufferedByteCount: Int { buffer.readableBytes }

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 { buffer.clear() }
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// The next complete message, or nil when more bytes are needed. A length over the limit throws
    /// as soon as the prefix is read, before its body is buffered.
    public mutating func nextMessage() throws(LengthPrefixError) -> ByteBuffer? {
        let decoded: (value: UInt64, length: Int)?
        do {
            decoded = try UVarint.decode(buffer.readableBytesView)
        } catch {
            throw .malformedLength
        }
        guard let (length, prefixLength) = decoded else { return nil }
        guard length <= UInt64(maxMessageSize) else { throw .messageTooLarge(length: length, limit: maxMessageSize) }
        guard buffer.readableBytes - prefixLength >= Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: prefixLength)
        return buffer.readSlice(length: Int(length))
    }

    /// Everything buffered and not yet returned as a message (e.g. data pipelined after a
    /// negotiation); the decoder is empty afterwards.
    public mutating func takeRemainder() -> ByteBuffer {
        defer { buffer = ByteBuffer() }
        return buffer.slice()
    }

    /// `uvarint len ‖ body` as one buffer.
    public static func frame(_ body: [UInt8]) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(body.count + 3)
        out.writeBytes(UVarint.encode(UInt64(body.count)))
        out.writeBytes(body)
        return out
    }

    /// Bytes a message of `bodyLength` occupies on the stream, prefix included (for flow control).
    public static func wireSize(bodyLength: Int) -> Int {
        bodyLength + UVarint.encode(UInt64(bodyLength)).count
    }

    /// Appends `message` with its length prefix.
    public static func encode(_ message: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeBytes(UVarint.encode(UInt64(message.readableBytes)))
        var message = message
        buffer.writeBuffer(&message)
    }
}
