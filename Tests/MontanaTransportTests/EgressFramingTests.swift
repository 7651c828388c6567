import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import XCTest

final class EgressFramingTests: XCTestCase {
    func test_bulkFramingIsByteIdenticalToTheCodecAndSplitsAt65519() throws {
        for size in [0, 1, 65519, 65520, 200_000] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7) }
            var fast = ByteBuffer()
            EgressFraming.appendData(streamID: 5, payload: ByteBuffer(bytes: payload), to: &fast)
            var expected = ByteBuffer()
            var offset = 0
            while offset < size {
                let n = min(EgressMessage.maxPayload, size - offset)
                expected.writeImmutableBuffer(LengthPrefixedDecoder.frame(try EgressMessage.data(streamID: 5, payload: Array(payload[offset..<offset + n])).encode()))
                offset += n
            }
            XCTAssertEqual(fast, expected, "size \(size)")
        }
    }

    func test_dataPayloadIsTakenOnlyFromEgressDataOfThisStream() throws {
        let data = ByteBuffer(bytes: try EgressMessage.data(streamID: 3, payload: [1, 2, 3]).encode())
        XCTAssertEqual(EgressFraming.dataPayload(data, streamID: 3), ByteBuffer(bytes: [1, 2, 3]))
        XCTAssertNil(EgressFraming.dataPayload(data, streamID: 5), "another stream's id is left to the codec (which resets)")
        XCTAssertNil(EgressFraming.dataPayload(ByteBuffer(bytes: try EgressMessage.close(streamID: 3, reason: .normal).encode()), streamID: 3))
        XCTAssertNil(EgressFraming.dataPayload(ByteBuffer(bytes: [0x04, 3, 0]), streamID: 3))
        let tooLong = ByteBuffer(bytes: [0x04, 3, 0, 0, 0] + [UInt8](repeating: 0, count: 65520))
        XCTAssertNil(EgressFraming.dataPayload(tooLong, streamID: 3), "oversized payloads go to the codec, which rejects them")
    }
}
