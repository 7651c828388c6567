import Foundation
import MontanaWire
import XCTest

final class SyncFrameTests: XCTestCase {
    func test_everyFieldRoundTripsAndUnknownFieldsAreSkipped() throws {
        let digest = DigestEntry.encode([DigestEntry(nodeID: [UInt8](repeating: 7, count: 32), window: 0x01020304,
                                                     attestationDigest: [1, 2, 3, 4, 5, 6, 7, 8])])
        let f = SyncFrame(record: [1, 2], attestation: [3], digest: digest, end: 1, waitSeconds: 60, selfRecord: [4, 5, 6])
        XCTAssertEqual(try SyncFrame.decode(f.encode()), f)
        var w = ProtoWriter()
        w.varint(99, 5)
        w.lengthDelimited(1, [9])
        XCTAssertEqual(try SyncFrame.decode(w.bytes), SyncFrame(record: [9]))
        XCTAssertEqual(try SyncFrame.decode([]), SyncFrame())
        XCTAssertEqual(SyncFrame(end: 1).encode(), [0x20, 0x01])
    }

    func test_boundsAreEnforced() throws {
        XCTAssertThrowsError(try SyncFrame.decode(SyncFrame(end: 2).encode()))
        XCTAssertNoThrow(try SyncFrame.decode(SyncFrame(waitSeconds: 60).encode()))
        XCTAssertThrowsError(try SyncFrame.decode(SyncFrame(waitSeconds: 61).encode()))
        XCTAssertThrowsError(try SyncFrame.decode(SyncFrame(digest: [UInt8](repeating: 0, count: 45)).encode()))
        XCTAssertThrowsError(try SyncFrame.decode(SyncFrame(record: [UInt8](repeating: 0, count: SyncFrame.maxFrameBytes)).encode())) {
            guard case .tooLong = $0 as? WireError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try SyncFrame.decode([0x0a, 0x05, 0x01]), "truncated")
    }

    func test_digestOf4096RecordsFitsInOneFrame() throws {
        let entries = (0..<4096).map { i in
            DigestEntry(nodeID: [UInt8](repeating: UInt8(i & 0xff), count: 31) + [UInt8(i >> 8)], window: UInt32(i), attestationDigest: [UInt8](repeating: 0, count: 8))
        }
        let bytes = DigestEntry.encode(entries)
        XCTAssertEqual(bytes.count, 4096 * DigestEntry.size)
        let frame = SyncFrame(digest: bytes).encode()
        XCTAssertLessThanOrEqual(frame.count, SyncFrame.maxFrameBytes)
        XCTAssertEqual(try DigestEntry.decode(try XCTUnwrap(SyncFrame.decode(frame).digest)), entries)
        XCTAssertEqual(Array(bytes[32..<36]), [0, 0, 0, 0], "window is u32 LE")
        XCTAssertEqual(Array(DigestEntry.encode([entries[258]])[32..<36]), [2, 1, 0, 0])
        XCTAssertThrowsError(try DigestEntry.decode([UInt8](repeating: 0, count: 43)))
        XCTAssertEqual(try DigestEntry.decode([]), [])
    }
}
