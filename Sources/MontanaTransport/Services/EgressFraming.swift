import MontanaSession
import MontanaWire
import NIOCore

/// The bulk path of `/montana/egress/1.0.0`: EgressData framed and unframed straight between
/// `ByteBuffer`s (no intermediate arrays), byte-identical to `EgressMessage.data(...).encode()`
/// with its `uvarint len` prefix. Every other message goes through `EgressMessage`.
public enum EgressFraming {
    /// Appends `uvarint len ‖ 0x04 ‖ stream_id u32 LE ‖ payload` for each ≤ 65519-byte piece of
    /// `payload` to `out`.
    public static func appendData(streamID: UInt32, payload: ByteBuffer, to out: inout ByteBuffer) {
        var payload = payload
        while payload.readableBytes > 0 {
            let n = min(payload.readableBytes, EgressMessage.maxPayload)
            out.writeBytes(UVarint.encode(UInt64(n + 5)))
            out.writeInteger(EgressMessage.TypeByte.data)
            out.writeInteger(streamID, endianness: .little)
            var piece = payload.readSlice(length: n)!
            out.writeBuffer(&piece)
        }
    }

    /// The payload of a length-stripped EgressData message for `streamID`, as a slice of `message`
    /// (no copy); nil when `message` is anything else (decode it with `EgressMessage`).
    public static func dataPayload(_ message: ByteBuffer, streamID: UInt32) -> ByteBuffer? {
        guard message.readableBytes >= 5, message.readableBytes - 5 <= EgressMessage.maxPayload,
              message.getInteger(at: message.readerIndex, as: UInt8.self) == EgressMessage.TypeByte.data,
              message.getInteger(at: message.readerIndex + 1, endianness: .little, as: UInt32.self) == streamID else { return nil }
        return message.getSlice(at: message.readerIndex + 5, length: message.readableBytes - 5)
    }
}
