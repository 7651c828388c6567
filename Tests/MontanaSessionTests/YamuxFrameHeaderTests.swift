import MontanaSession
import NIOCore
import XCTest

final class YamuxFrameHeaderTests: XCTestCase {
    func test_headerEncodesVersionTypeFlagsAndBigEndianFields() {
        let buffer = header(.data, [.syn, .fin], 0x0102_0304, 0x0a0b_0c0d)
        XCTAssertEqual(Array(buffer.readableBytesView),
                       [0, 0, 0x00, 0x05, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d])
    }

    func test_headerDecodeRoundTripsEveryTypeAndFlag() throws {
        for type in [YamuxFrameType.data, .windowUpdate, .ping, .goAway] {
            for flags in [YamuxFlags(), .syn, .ack, .fin, .rst, [.syn, .ack, .fin, .rst]] {
                let original = YamuxFrameHeader(type: type, flags: flags, streamID: 7, length: 99)
                var buffer = ByteBuffer()
                original.encode(into: &buffer)
                XCTAssertEqual(try YamuxFrameHeader.decode(from: &buffer), original)
                XCTAssertEqual(buffer.readableBytes, 0)
            }
        }
    }

    func test_headerDecodeWaitsForTwelveBytesAndConsumesNothing() throws {
        var buffer = ByteBuffer(bytes: [0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0])
        XCTAssertNil(try YamuxFrameHeader.decode(from: &buffer))
        XCTAssertEqual(buffer.readableBytes, 11)
    }

    func test_headerWithUnknownVersionIsRejected() {
        var buffer = ByteBuffer(bytes: [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        XCTAssertThrowsError(try YamuxFrameHeader.decode(from: &buffer)) {
            XCTAssertEqual($0 as? YamuxError, .unsupportedVersion(1))
        }
    }

    func test_headerWithUnknownTypeIsRejected() {
        var buffer = ByteBuffer(bytes: [0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        XCTAssertThrowsError(try YamuxFrameHeader.decode(from: &buffer)) {
            XCTAssertEqual($0 as? YamuxError, .unknownFrameType(4))
        }
    }
}
