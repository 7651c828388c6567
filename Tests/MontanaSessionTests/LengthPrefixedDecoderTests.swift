import MontanaSession
import MontanaWire
import NIOCore
import XCTest

final class LengthPrefixedDecoderTests: XCTestCase {
    func test_messagesAreYieldedOnlyWhenComplete() throws {
        var encoded = ByteBuffer()
        LengthPrefixedDecoder.encode(ByteBuffer(string: "one"), into: &encoded)
        LengthPrefixedDecoder.encode(ByteBuffer(), into: &encoded)
        LengthPrefixedDecoder.encode(ByteBuffer(bytes: pattern(300)), into: &encoded)

        var decoder = LengthPrefixedDecoder()
        var messages: [ByteBuffer] = []
        for byte in encoded.readableBytesView {
            decoder.append(ByteBuffer(bytes: [byte]))
            while let message = try decoder.nextMessage() { messages.append(message) }
        }
        XCTAssertEqual(messages, [ByteBuffer(string: "one"), ByteBuffer(), ByteBuffer(bytes: pattern(300))])
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }

    func test_defaultLimitAcceptsAFullEgressDataMessage() throws {
        var encoded = ByteBuffer()
        LengthPrefixedDecoder.encode(ByteBuffer(bytes: pattern(65536 + 16)), into: &encoded)
        var decoder = LengthPrefixedDecoder()
        decoder.append(encoded)
        XCTAssertEqual(try decoder.nextMessage()?.readableBytes, 65536 + 16)
    }

    func test_messageOverTheLimitIsRejectedBeforeItsBodyArrives() {
        var decoder = LengthPrefixedDecoder()
        decoder.append(ByteBuffer(bytes: UVarint.encode(65536 + 17)))
        XCTAssertThrowsError(try decoder.nextMessage()) {
            XCTAssertEqual($0 as? LengthPrefixError, .messageTooLarge(length: 65553, limit: 65552))
        }
    }

    func test_malformedLengthIsRejected() {
        var decoder = LengthPrefixedDecoder(maxMessageSize: 10)
        decoder.append(ByteBuffer(bytes: [UInt8](repeating: 0x80, count: 10) + [0x01]))
        XCTAssertThrowsError(try decoder.nextMessage()) {
            XCTAssertEqual($0 as? LengthPrefixError, .malformedLength)
        }
    }
}
