import MontanaCrypto
import MontanaFuzzTargets
import MontanaWire
import NIOCore
import XCTest

/// Transport records on a real, established responder session (Noise_PQ XX done for real).
final class SessionRecordTests: XCTestCase {
    func test_ackBeyondTheBytesSentClosesTheSession() throws {
        let session = try ResponderSessionHarness.make()
        defer { session.finish() }
        _ = session.drainOutbound()
        XCTAssertTrue(session.channel.isActive)
        session.sendRecord(.ack(1_000_000_000))
        XCTAssertFalse(session.channel.isActive, "an ACK for bytes never sent is a protocol violation")
    }

    func test_ackWithinTheBytesSentAndPaddingKeepTheSession() throws {
        let session = try ResponderSessionHarness.make()
        defer { session.finish() }
        _ = session.drainOutbound()
        session.sendRecord(.ack(0))
        session.sendRecord(.padding(1000))
        XCTAssertTrue(session.channel.isActive)
    }

    func test_garbageAfterTheHandshakeClosesTheSession() throws {
        let session = try ResponderSessionHarness.make()
        defer { session.finish() }
        session.sendRaw([0x00, 0x20] + [UInt8](repeating: 0xAB, count: 32))
        XCTAssertFalse(session.channel.isActive, "a record that fails authentication ends the session")
    }
}
