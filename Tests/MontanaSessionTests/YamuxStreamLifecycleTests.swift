import MontanaSession
import NIOCore
import XCTest

final class YamuxStreamLifecycleTests: XCTestCase {
    func test_clientOpensOddStreamIDsAndServerEvenOnes() throws {
        var pair = YamuxPair()
        XCTAssertEqual(try pair.client.openStream(), YamuxStreamID(1))
        XCTAssertEqual(try pair.client.openStream(), YamuxStreamID(3))
        XCTAssertEqual(try pair.server.openStream(), YamuxStreamID(2))
        XCTAssertEqual(try pair.server.openStream(), YamuxStreamID(4))
    }

    func test_newStreamIsAnnouncedByWindowUpdateSYNAndAckedAtOnce() throws {
        var client = YamuxConnection(role: .client)
        var server = YamuxConnection(role: .server)
        let id = try client.openStream()
        let syn = try XCTUnwrap(client.takeOutbound())
        XCTAssertEqual(syn, header(.windowUpdate, .syn, 1, 0))

        XCTAssertEqual(try server.receive(syn, now: 0), [.streamOpened(id)])
        XCTAssertEqual(server.takeOutbound(), header(.windowUpdate, .ack, 1, 0))
    }

    func test_synRidingOnFirstDataFrameOpensTheStreamWithItsData() throws {
        var server = YamuxConnection(role: .server)
        var frame = header(.data, .syn, 1, 3)
        frame.writeString("abc")
        XCTAssertEqual(try server.receive(frame, now: 0),
                       [.streamOpened(YamuxStreamID(1)), .data(YamuxStreamID(1), ByteBuffer(string: "abc"))])
    }

    func test_streamsCarryDataInBothDirections() throws {
        var pair = YamuxPair()
        let up = try pair.client.openStream()
        try pair.client.write(ByteBuffer(string: "hello"), to: up)
        try pair.pump()
        let down = try pair.server.openStream()
        try pair.server.write(ByteBuffer(string: "world"), to: down)
        try pair.server.write(ByteBuffer(string: "reply"), to: up)
        try pair.pump()

        XCTAssertEqual(pair.serverEvents.control, [.streamOpened(up)])
        XCTAssertEqual(pair.serverEvents.bytes(on: up), Array("hello".utf8))
        XCTAssertEqual(pair.clientEvents.control, [.streamOpened(down)])
        XCTAssertEqual(pair.clientEvents.bytes(on: down), Array("world".utf8))
        XCTAssertEqual(pair.clientEvents.bytes(on: up), Array("reply".utf8))
    }

    func test_finHalfClosesAndTheStreamEndsWhenBothSidesClosed() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        try pair.client.write(ByteBuffer(string: "request"), to: id)
        pair.client.close(id)
        try pair.pump()
        XCTAssertEqual(pair.serverEvents.control, [.streamOpened(id), .remoteClosed(id)])
        XCTAssertThrowsError(try pair.client.write(ByteBuffer(string: "more"), to: id)) {
            XCTAssertEqual($0 as? YamuxError, .streamClosedForWriting(id))
        }

        // The other half still flows.
        try pair.server.write(ByteBuffer(string: "response"), to: id)
        pair.server.close(id)
        try pair.pump()
        XCTAssertEqual(pair.clientEvents.bytes(on: id), Array("response".utf8))
        XCTAssertEqual(pair.clientEvents.control, [.remoteClosed(id)])
        XCTAssertEqual(pair.client.openStreamCount, 0)
        XCTAssertEqual(pair.server.openStreamCount, 0)
    }

    func test_resetRemovesTheStreamOnBothSides() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        try pair.pump()
        pair.server.reset(id)
        try pair.pump()
        XCTAssertEqual(pair.clientEvents.control, [.reset(id)])
        XCTAssertEqual(pair.client.openStreamCount, 0)
        XCTAssertEqual(pair.server.openStreamCount, 0)
        XCTAssertThrowsError(try pair.client.write(ByteBuffer(string: "late"), to: id)) {
            XCTAssertEqual($0 as? YamuxError, .unknownStream(id))
        }
    }

    func test_framesForAForgottenStreamAreSkipped() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        try pair.pump()
        pair.server.reset(id)
        // The client's data crosses the RST in flight; the server drops it silently.
        try pair.client.write(ByteBuffer(string: "in flight"), to: id)
        let crossing = try XCTUnwrap(pair.client.takeOutbound())
        XCTAssertEqual(try pair.server.receive(crossing, now: 0), [])
    }

    func test_pingIsAnsweredWithTheSameOpaqueValueAndReportsRTT() throws {
        var client = YamuxConnection(role: .client)
        var server = YamuxConnection(role: .server)
        client.ping(now: 1_000)
        let ping = try XCTUnwrap(client.takeOutbound())
        XCTAssertEqual(ping, header(.ping, .syn, 0, 1))

        XCTAssertEqual(try server.receive(ping, now: 5), [])
        let pong = try XCTUnwrap(server.takeOutbound())
        XCTAssertEqual(pong, header(.ping, .ack, 0, 1))

        XCTAssertEqual(try client.receive(pong, now: 41_000), [.pingRTT(nanoseconds: 40_000)])
        XCTAssertEqual(client.roundTripTime, 40_000)
    }

    func test_goAwayIsReportedAndThePeerOpensNoMoreStreams() throws {
        var pair = YamuxPair()
        let existing = try pair.client.openStream()
        try pair.pump()
        pair.server.goAway()
        try pair.pump()
        XCTAssertEqual(pair.clientEvents.control, [.goAway(.normal)])
        XCTAssertThrowsError(try pair.client.openStream()) { XCTAssertEqual($0 as? YamuxError, .goingAway) }

        // Existing streams carry on.
        try pair.client.write(ByteBuffer(string: "still here"), to: existing)
        try pair.pump()
        XCTAssertEqual(pair.serverEvents.bytes(on: existing), Array("still here".utf8))
    }

    func test_streamOpenedAcrossALocalGoAwayIsReset() throws {
        var pair = YamuxPair()
        pair.server.goAway(.internalError)
        let id = try pair.client.openStream()
        try pair.pump()
        XCTAssertEqual(pair.clientEvents.control, [.goAway(.internalError), .reset(id)])
        XCTAssertEqual(pair.serverEvents, [])
    }

    func test_inboundStreamsBeyondTheLimitAreReset() throws {
        var config = YamuxConfiguration()
        config.maxInboundStreams = 2
        var pair = YamuxPair(server: config)
        let first = try pair.client.openStream()
        let second = try pair.client.openStream()
        let third = try pair.client.openStream()
        try pair.pump()
        XCTAssertEqual(pair.serverEvents, [.streamOpened(first), .streamOpened(second)])
        XCTAssertEqual(pair.clientEvents, [.reset(third)])

        // A slot frees up when a stream ends.
        pair.client.reset(first)
        let fourth = try pair.client.openStream()
        try pair.pump()
        XCTAssertEqual(pair.serverEvents.suffix(2), [.reset(first), .streamOpened(fourth)])
    }

    func test_defaultLimitIs256InboundStreams() throws {
        var pair = YamuxPair()
        for _ in 0..<257 { _ = try pair.client.openStream() }
        try pair.pump()
        XCTAssertEqual(pair.server.openStreamCount, 256)
        XCTAssertEqual(pair.clientEvents, [.reset(YamuxStreamID(513))])
    }
}
