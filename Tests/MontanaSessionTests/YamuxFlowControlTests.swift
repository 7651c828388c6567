import MontanaSession
import NIOCore
import XCTest

final class YamuxFlowControlTests: XCTestCase {
    let window = Int(YamuxConfiguration.initialWindowSize)

    func test_sendWindowExhaustionHoldsDataUntilAWindowUpdate() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        let payload = pattern(window + 44 * 1024)
        try pair.client.write(ByteBuffer(bytes: payload), to: id)
        try pair.pump()

        XCTAssertEqual(pair.serverEvents.dataByteCount(on: id), window)
        XCTAssertEqual(pair.client.sendWindow(of: id), 0)
        XCTAssertEqual(pair.client.pendingOutboundBytes(on: id), 44 * 1024)

        pair.server.consumed(window, on: id, now: pair.now)
        try pair.pump()
        XCTAssertEqual(pair.serverEvents.bytes(on: id), payload)
        XCTAssertEqual(pair.client.pendingOutboundBytes(on: id), 0)
    }

    func test_windowUpdatesFollowConsumptionNotArrival() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        try pair.client.write(ByteBuffer(bytes: pattern(window)), to: id)
        try pair.pump()
        XCTAssertNil(pair.server.takeOutbound(), "arrival alone must not reopen the window")

        // Less than half a window consumed: still no update.
        pair.server.consumed(window / 2 - 1, on: id, now: pair.now)
        XCTAssertNil(pair.server.takeOutbound())
        pair.server.consumed(1, on: id, now: pair.now)
        let update = try XCTUnwrap(pair.server.takeOutbound())
        XCTAssertEqual(update.getInteger(at: 1, as: UInt8.self), YamuxFrameType.windowUpdate.rawValue)
    }

    func test_writeSignalsBackpressureAndWritableFollowsTheWindowUpdate() throws {
        var config = YamuxConfiguration()
        config.maxPendingOutboundBytesPerStream = 64 * 1024
        var pair = YamuxPair(client: config)
        let id = try pair.client.openStream()
        XCTAssertTrue(try pair.client.write(ByteBuffer(bytes: pattern(window)), to: id))
        XCTAssertFalse(try pair.client.write(ByteBuffer(bytes: pattern(64 * 1024)), to: id))
        XCTAssertFalse(pair.client.isWritable(id))
        XCTAssertThrowsError(try pair.client.write(ByteBuffer(bytes: [1]), to: id)) {
            XCTAssertEqual($0 as? YamuxError, .streamNotWritable(id))
        }
        try pair.pump()
        XCTAssertEqual(pair.clientEvents, [])

        pair.server.consumed(window, on: id, now: pair.now)
        try pair.pump()
        XCTAssertEqual(pair.clientEvents, [.writable(id)])
        XCTAssertTrue(pair.client.isWritable(id))
        XCTAssertEqual(pair.serverEvents.dataByteCount(on: id), window + 64 * 1024)
    }

    func test_finFollowsTheBacklogOnceTheWindowAllows() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        try pair.client.write(ByteBuffer(bytes: pattern(window + 10)), to: id)
        pair.client.close(id)
        try pair.pump()
        XCTAssertFalse(pair.serverEvents.contains(.remoteClosed(id)))

        pair.server.consumed(window, on: id, now: pair.now)
        try pair.pump()
        XCTAssertEqual(pair.serverEvents.dataByteCount(on: id), window + 10)
        XCTAssertEqual(pair.serverEvents.last, .remoteClosed(id))
    }

    func test_largeWritesAreSplitIntoFramesOfTheConfiguredSize() throws {
        var client = YamuxConnection(role: .client)
        let id = try client.openStream()
        _ = client.takeOutbound()
        try client.write(ByteBuffer(bytes: pattern(40 * 1024)), to: id)
        var out = try XCTUnwrap(client.takeOutbound())
        var sizes: [UInt32] = []
        while let frame = try YamuxFrameHeader.decode(from: &out) {
            sizes.append(frame.length)
            out.moveReaderIndex(forwardBy: Int(frame.length))
        }
        XCTAssertEqual(sizes, [16384, 16384, 8192])
    }

    /// Streams the whole payload through, the server consuming everything it receives and the
    /// clock advancing `step` nanoseconds per round.
    private func transfer(_ total: Int, step: UInt64, config: YamuxConfiguration) throws -> YamuxPair {
        var pair = YamuxPair(server: config)
        let id = try pair.client.openStream()
        var sent = 0
        var consumed = 0
        while consumed < total {
            while sent < total, pair.client.isWritable(id) {
                let chunk = min(64 * 1024, total - sent)
                try pair.client.write(ByteBuffer(bytes: pattern(chunk)), to: id)
                sent += chunk
            }
            let before = pair.serverEvents.count
            try pair.pump()
            let arrived = pair.serverEvents[before...].reduce(0) { sum, event in
                if case .data(_, let buffer) = event { return sum + buffer.readableBytes }
                return sum
            }
            XCTAssertGreaterThan(arrived, 0, "transfer stalled")
            if arrived == 0 { break }
            pair.now += step
            pair.server.consumed(arrived, on: id, now: pair.now)
            consumed += arrived
        }
        return pair
    }

    func test_receiveWindowDoublesForAFastConsumerUpToTheMaximum() throws {
        var config = YamuxConfiguration()
        config.maxReceiveWindowSize = 1024 * 1024
        let pair = try transfer(8 * 1024 * 1024, step: 1_000_000, config: config)
        XCTAssertEqual(pair.server.receiveWindowSize(of: YamuxStreamID(1)), 1024 * 1024)
        // The sender saw the larger window too: it never holds more credit than the window.
        XCTAssertLessThanOrEqual(pair.client.sendWindow(of: YamuxStreamID(1)) ?? 0, 1024 * 1024)
    }

    func test_receiveWindowStaysForASlowConsumer() throws {
        let pair = try transfer(2 * 1024 * 1024, step: 1_000_000_000, config: YamuxConfiguration())
        XCTAssertEqual(pair.server.receiveWindowSize(of: YamuxStreamID(1)), YamuxConfiguration.initialWindowSize)
    }

    func test_autoTuningUsesTheMeasuredRTT() throws {
        // With a measured RTT of 1 ms, consuming half a window every 10 ms is slow: no growth,
        // although it would count as fast against the assumed 100 ms.
        var pair = YamuxPair()
        pair.server.ping(now: pair.now)
        let ping = try XCTUnwrap(pair.server.takeOutbound())
        _ = try pair.client.receive(ping, now: pair.now)
        let pong = try XCTUnwrap(pair.client.takeOutbound())
        XCTAssertEqual(try pair.server.receive(pong, now: pair.now + 1_000_000), [.pingRTT(nanoseconds: 1_000_000)])

        let id = try pair.client.openStream()
        for _ in 0..<8 {
            try pair.client.write(ByteBuffer(bytes: pattern(window / 2)), to: id)
            try pair.pump()
            pair.now += 10_000_000
            pair.server.consumed(window / 2, on: id, now: pair.now)
        }
        XCTAssertEqual(pair.server.receiveWindowSize(of: id), YamuxConfiguration.initialWindowSize)
    }

    func test_dataBeyondWindowIsProtocolError() throws {
        var server = YamuxConnection(role: .server)
        var input = header(.windowUpdate, .syn, 1, 0)
        input.writeImmutableBuffer(header(.data, [], 1, YamuxConfiguration.initialWindowSize + 1))
        XCTAssertThrowsError(try server.receive(input, now: 0)) {
            XCTAssertEqual($0 as? YamuxError,
                           .windowExceeded(stream: 1, length: YamuxConfiguration.initialWindowSize + 1,
                                           window: YamuxConfiguration.initialWindowSize))
        }
        var expected = header(.windowUpdate, .ack, 1, 0)
        expected.writeImmutableBuffer(header(.goAway, [], 0, YamuxGoAwayCode.protocolError.rawValue))
        XCTAssertEqual(server.takeOutbound(), expected)
        XCTAssertTrue(server.isFailed)
        XCTAssertThrowsError(try server.receive(ByteBuffer(), now: 0)) {
            XCTAssertEqual($0 as? YamuxError, .connectionFailed)
        }
    }

    func test_dataBeyondTheRemainingCreditIsProtocolErrorToo() throws {
        var pair = YamuxPair()
        let id = try pair.client.openStream()
        try pair.client.write(ByteBuffer(bytes: pattern(window - 10)), to: id)
        try pair.pump()
        var overrun = header(.data, [], id.rawValue, 11)
        overrun.writeBytes(pattern(11))
        XCTAssertThrowsError(try pair.server.receive(overrun, now: 0)) {
            XCTAssertEqual(($0 as? YamuxError)?.isProtocolViolation, true)
        }
    }

    func test_windowUpdateOverflowingTheWindowIsProtocolError() throws {
        var client = YamuxConnection(role: .client)
        let id = try client.openStream()
        XCTAssertThrowsError(try client.receive(header(.windowUpdate, .ack, id.rawValue, UInt32.max), now: 0)) {
            XCTAssertEqual($0 as? YamuxError, .windowOverflow(stream: 1))
        }
    }
}
