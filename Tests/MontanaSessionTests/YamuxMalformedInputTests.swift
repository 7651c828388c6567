import MontanaSession
import NIOCore
import XCTest

final class YamuxMalformedInputTests: XCTestCase {
    private func assertProtocolError(_ input: ByteBuffer, role: YamuxRole = .server, _ expected: YamuxError,
                                     file: StaticString = #filePath, line: UInt = #line) {
        var connection = YamuxConnection(role: role)
        XCTAssertThrowsError(try connection.receive(input, now: 0), file: file, line: line) {
            XCTAssertEqual($0 as? YamuxError, expected, file: file, line: line)
        }
        let goAway = header(.goAway, [], 0, YamuxGoAwayCode.protocolError.rawValue)
        let out = connection.takeOutbound()
        XCTAssertEqual(out?.getSlice(at: (out?.readerIndex ?? 0) + (out?.readableBytes ?? 0) - 12, length: 12),
                       goAway, "the connection must send GoAway(protocol error)", file: file, line: line)
    }

    func test_unknownVersionIsProtocolError() {
        assertProtocolError(ByteBuffer(bytes: [9, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]), .unsupportedVersion(9))
    }

    func test_unknownTypeIsProtocolError() {
        assertProtocolError(ByteBuffer(bytes: [0, 7, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]), .unknownFrameType(7))
    }

    func test_dataOnTheSessionStreamIsProtocolError() {
        assertProtocolError(header(.data, [], 0, 0), .streamFrameOnSessionID(.data))
    }

    func test_peerOpeningAnIDOfOurParityIsProtocolError() {
        assertProtocolError(header(.windowUpdate, .syn, 2, 0), role: .server, .wrongStreamIDParity(2))
        assertProtocolError(header(.windowUpdate, .syn, 1, 0), role: .client, .wrongStreamIDParity(1))
    }

    func test_duplicateSYNIsProtocolError() {
        var input = header(.windowUpdate, .syn, 1, 0)
        input.writeImmutableBuffer(header(.windowUpdate, .syn, 1, 0))
        assertProtocolError(input, .duplicateStream(1))
    }

    func test_reusingAnOldStreamIDIsProtocolError() {
        var input = header(.windowUpdate, .syn, 5, 0)
        input.writeImmutableBuffer(header(.windowUpdate, .syn, 3, 0))
        assertProtocolError(input, .streamIDNotIncreasing(3))
    }

    func test_dataAfterFINIsProtocolError() {
        var input = header(.windowUpdate, [.syn, .fin], 1, 0)
        input.writeImmutableBuffer(header(.data, [], 1, 1))
        assertProtocolError(input, .dataAfterFIN(stream: 1))
    }

    func test_bytesSplitAtEveryBoundaryDecodeLikeOneBuffer() throws {
        var whole = header(.windowUpdate, .syn, 1, 0)
        whole.writeImmutableBuffer(header(.data, .fin, 1, 5))
        whole.writeString("hello")
        whole.writeImmutableBuffer(header(.ping, .syn, 0, 42))

        var reference = YamuxConnection(role: .server)
        let expected = try reference.receive(whole, now: 0)
        XCTAssertEqual(expected.control, [.streamOpened(YamuxStreamID(1)), .remoteClosed(YamuxStreamID(1))])

        var split = YamuxConnection(role: .server)
        var events: [YamuxEvent] = []
        for byte in whole.readableBytesView {
            events += try split.receive(ByteBuffer(bytes: [byte]), now: 0)
        }
        XCTAssertEqual(events.control, expected.control)
        XCTAssertEqual(events.bytes(on: YamuxStreamID(1)), Array("hello".utf8))
        XCTAssertEqual(split.takeOutbound(), reference.takeOutbound())
    }

    func test_randomBytesNeverCrashAndFailCleanly() {
        var rng = SplitMix64(state: 0x6d6f_6e74_616e_61)
        for _ in 0..<3_000 {
            var connection = YamuxConnection(role: .server)
            var input = ByteBuffer()
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                // Mostly plausible headers (version 0, known types, small ids), so the fuzzing
                // reaches stream handling rather than stopping at the version byte.
                if Bool.random(using: &rng) {
                    let type = YamuxFrameType(rawValue: UInt8.random(in: 0...3, using: &rng)) ?? .data
                    let flags = YamuxFlags(rawValue: UInt16.random(in: 0...15, using: &rng))
                    let length = UInt32.random(in: 0...300, using: &rng)
                    input.writeImmutableBuffer(header(type, flags, UInt32.random(in: 0...6, using: &rng), length))
                    input.writeBytes((0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                } else {
                    input.writeBytes((0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                }
            }
            do throws(YamuxError) {
                _ = try connection.receive(input, now: 0)
                XCTAssertFalse(connection.isFailed)
            } catch {
                XCTAssertTrue(error.isProtocolViolation, "\(error)")
                XCTAssertTrue(connection.isFailed)
                XCTAssertEqual(connection.openStreamCount, 0)
            }
        }
    }
}
