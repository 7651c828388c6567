import MontanaWire
import NIOCore

/// multistream-select 1.0 framing: each message is `uvarint len ‖ line ‖ "\n"`, `len` counting the newline.
public enum MultistreamSelect {
    public static let header = "/multistream/1.0.0"
    public static let notAvailable = "na"
    /// Lines (with the newline) longer than this are rejected.
    public static let defaultMaxLineLength = 1024

    /// Appends the message for `line` (given without its newline).
    public static func writeLine(_ line: String, into buffer: inout ByteBuffer) {
        let bytes = Array(line.utf8) + [UInt8(ascii: "\n")]
        buffer.writeBytes(UVarint.encode(UInt64(bytes.count)))
        buffer.writeBytes(bytes)
    }

    /// Whether `name` can be sent as a line: printable ASCII, non-empty, within `maxLineLength`.
    static func isValidLine(_ name: String, maxLineLength: Int) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count < maxLineLength && bytes.allSatisfy(isPrintable)
    }

    static func isPrintable(_ byte: UInt8) -> Bool { byte >= 0x20 && byte <= 0x7e }
}

/// Buffers stream bytes and cuts them into multistream lines (length-prefixed messages that end
/// in a newline). It holds only what arrived during the negotiation (bounded by the yamux window);
/// the rest is handed back by `takeRemainder`.
struct MultistreamLineReader: Sendable {
    private var decoder: LengthPrefixedDecoder

    init(maxLineLength: Int) { decoder = LengthPrefixedDecoder(maxMessageSize: maxLineLength) }

    mutating func append(_ bytes: ByteBuffer) {
        decoder.append(bytes)
    }

    /// The next complete line without its newline, or nil when more bytes are needed.
    mutating func nextLine() throws(MultistreamError) -> String? {
        let message: ByteBuffer?
        do {
            message = try decoder.nextMessage()
        } catch {
            switch error {
            case .malformedLength: throw .malformedLength
            case .messageTooLarge(let length, let limit): throw .lineTooLong(length: length, limit: limit)
            }
        }
        guard let message else { return nil }
        let line = Array(message.readableBytesView)
        guard let last = line.last else { throw .emptyLine }
        guard last == UInt8(ascii: "\n") else { throw .missingNewline }
        let text = line.dropLast()
        guard text.allSatisfy(MultistreamSelect.isPrintable) else { throw .invalidCharacters }
        return String(decoding: text, as: UTF8.self)
    }

    /// Everything after the last line read: pipelined application data.
    mutating func takeRemainder() -> ByteBuffer {
        decoder.takeRemainder()
    }
}
