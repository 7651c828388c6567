import MontanaCrypto
import XCTest

final class TransportFrameTests: XCTestCase {
    let key = [UInt8](repeating: 7, count: 32)

    func test_framesRoundTripThroughTheDeframerInArbitraryFragments() throws {
        var sender = TransportCipher(key: key)
        var receiver = TransportCipher(key: key)
        let records: [TransportRecord] = [.data(Array("hello".utf8)), .ack(5), .padding(100), .data([UInt8](repeating: 9, count: TransportRecord.maxData)), .close(0)]
        var wire: [UInt8] = []
        for r in records { wire += try sender.seal(r.encode()) }
        var deframer = FrameDeframer()
        var decoded: [TransportRecord] = []
        var i = 0
        while i < wire.count {
            let n = min(7 + i % 13, wire.count - i)
            deframer.append(wire[i..<i + n])
            i += n
            while let body = deframer.nextBody() { decoded.append(try TransportRecord.decode(receiver.open(body))) }
        }
        XCTAssertEqual(decoded, records)
        XCTAssertEqual(deframer.bufferedCount, 0)
    }

    func test_tamperedOrReorderedFramesFailAuthentication() throws {
        var sender = TransportCipher(key: key)
        let f0 = try sender.seal(TransportRecord.data([1]).encode())
        let f1 = try sender.seal(TransportRecord.data([2]).encode())
        var receiver = TransportCipher(key: key)
        XCTAssertThrowsError(try receiver.open(f1[2...])) { XCTAssertEqual($0 as? FrameError, .authenticationFailed) }
        var tampered = f0
        tampered[3] ^= 1
        var r2 = TransportCipher(key: key)
        XCTAssertThrowsError(try r2.open(tampered[2...]))
    }

    func test_counterExhaustionAbortsBeforeNonceReuse() throws {
        var sender = TransportCipher(key: key, counter: UInt64.max - 1)
        XCTAssertNoThrow(try sender.seal([0]))
        XCTAssertThrowsError(try sender.seal([0])) { XCTAssertEqual($0 as? FrameError, .counterExhausted) }
    }

    func test_oversizedPlaintextIsRefused() {
        var sender = TransportCipher(key: key)
        XCTAssertThrowsError(try sender.seal([UInt8](repeating: 0, count: 65520))) { XCTAssertEqual($0 as? FrameError, .plaintextTooLong(65520)) }
    }

    func test_malformedRecordsAreErrors() {
        XCTAssertThrowsError(try TransportRecord.decode([]))
        XCTAssertThrowsError(try TransportRecord.decode([0x01, 1, 2]))
        XCTAssertThrowsError(try TransportRecord.decode([0x03]))
        XCTAssertThrowsError(try TransportRecord.decode([0x04])) { XCTAssertEqual($0 as? FrameError, .unknownRecordType(4)) }
        XCTAssertEqual(try TransportRecord.decode([0x03, 9]), .close(9))
    }
}
