import MontanaCrypto
import MontanaSession
import MontanaTransport
import NIOCore
import NIOEmbedded
import XCTest

/// A session's memory stays bounded whatever the peer sends, and it stops reading a carrier that
/// it cannot write to.
final class MuxHostilePeerTests: XCTestCase {
    /// Sits under the mux like a carrier whose peer never reads: it holds every write's promise
    /// (the bytes never reach a socket) and counts the reads the mux asks for.
    final class StuckCarrier: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var held: [EventLoopPromise<Void>] = []
        var heldBytes = 0
        var reads = 0

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            heldBytes += unwrapOutboundIn(data).readableBytes
            if let promise { held.append(promise) }
        }

        func read(context: ChannelHandlerContext) {
            reads += 1
        }

        func release() {
            let all = held
            held = []
            heldBytes = 0
            for p in all { p.succeed() }
        }
    }

    private func establishedServer(_ mux: MuxHandler, below: (any ChannelHandler)? = nil) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        if let below { try channel.pipeline.syncOperations.addHandler(below) }
        try channel.pipeline.syncOperations.addHandler(mux)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let event = SessionEstablished(peer: NoisePeer(identityPublicKey: [], payload: []), sessionID: [], admission: SessionAdmission())
        channel.pipeline.fireUserInboundEventTriggered(event)
        return channel
    }

    private func frame(_ type: YamuxFrameType, _ flags: YamuxFlags, _ id: UInt32, _ length: UInt32, body: [UInt8] = []) -> ByteBuffer {
        var b = ByteBuffer()
        YamuxFrameHeader(type: type, flags: flags, streamID: id, length: length).encode(into: &b)
        b.writeBytes(body)
        return b
    }

    func test_pingHoarderWhoNeverGrantsWindowPinsAtMostOneWindowAndBacklog() throws {
        let pair = try MuxHandlerTests.Pair(services: [PingService()])
        var hoarded = 0
        let stream = try XCTUnwrap(pair.clientMux.openStream(protocol: "/ipfs/ping/1.0.0") { _ in })
        // The hoarder reads its answers but never reports them consumed: no window update ever.
        stream.onData = { hoarded += $0.readableBytes }
        var sent = 0
        var peakHeld = 0
        let ping = ByteBuffer(repeating: 0x55, count: 32 * 512)  // 512 pings per write
        // 16 MiB offered; the server may take only what windows allow.
        for _ in 0..<1024 {
            if stream.isWritable {
                stream.write(ping)
                sent += ping.readableBytes
            }
            try pair.pump()
            peakHeld = max(peakHeld, pair.serverMux.heldOutboundBytes)
        }
        XCTAssertLessThanOrEqual(peakHeld, 256 * 1024 + 16 * 1024, "the server's backlog is bounded by yamux's per-stream queue")
        XCTAssertLessThan(sent, 2 * 1024 * 1024, "the hoarder is held to the windows, not to what it wants to send")
        XCTAssertGreaterThan(hoarded, 0, "pings were answered up to the window")
    }

    func test_pingsAreAnsweredWhileTheClientConsumes() throws {
        let pair = try MuxHandlerTests.Pair(services: [PingService()])
        var answered = 0
        let stream = try XCTUnwrap(pair.clientMux.openStream(protocol: "/ipfs/ping/1.0.0") { _ in })
        stream.onData = { b in
            answered += b.readableBytes
            stream.consumed(b.readableBytes)
        }
        for _ in 0..<48 {
            stream.write(ByteBuffer(repeating: 1, count: 32 * 256))
            try pair.pump()
        }
        XCTAssertEqual(answered, 48 * 32 * 256, "an honest pinger gets every answer (more than one window's worth)")
    }

    func test_sessionStopsReadingWhileItsAnswersCannotBeSent() throws {
        let carrier = StuckCarrier()
        let limit = 256 * 1024  // the node runs with 8 MiB; the mechanism is the same
        let mux = MuxHandler(role: .server, maxUnsentBytes: limit)
        let channel = try establishedServer(mux, below: carrier)
        defer { _ = try? channel.finish() }
        // SYN then RST, over and over: each SYN costs an ACK (12 bytes) we cannot send.
        var id: UInt32 = 1
        var floodBytes = 0
        while carrier.heldBytes < limit + 64 * 1024 {
            var batch = ByteBuffer()
            for _ in 0..<512 {
                batch.writeImmutableBuffer(frame(.windowUpdate, [.syn], id, 0))
                batch.writeImmutableBuffer(frame(.windowUpdate, [.rst], id, 0))
                id += 2
            }
            floodBytes += batch.readableBytes
            try channel.writeInbound(batch)
            XCTAssertLessThan(floodBytes, 8 * 1024 * 1024, "answers never accumulated")
        }
        let readsBefore = carrier.reads
        channel.read()
        XCTAssertEqual(carrier.reads, readsBefore, "no read is passed down while the answers are stuck")
        carrier.release()
        XCTAssertEqual(carrier.reads, readsBefore + 1, "the held read goes down once the carrier drained")
        XCTAssertEqual(mux.unsentCarrierBytes, 0)
    }

    func test_controlSessionRefusesStreamsBeyondItsSmallLimit() throws {
        let pair = try MuxHandlerTests.Pair(services: [])
        pair.serverMux.setServices([PingService()], maxInboundStreams: MuxHandler.controlSessionStreams)
        var refused = 0
        var accepted = 0
        for _ in 0..<(MuxHandler.controlSessionStreams + 8) {
            let s = pair.clientMux.openStream(protocol: "/ipfs/ping/1.0.0") { ok in if ok { accepted += 1 } }
            s?.onEnd = { end in if end == .reset { refused += 1 } }
        }
        try pair.pump()
        XCTAssertEqual(accepted, MuxHandler.controlSessionStreams)
        XCTAssertEqual(refused, 8)
    }

    func test_writerIgnoringBackpressureHasItsStreamResetInsteadOfGrowingMemory() throws {
        let sink = MuxHandlerTests.Sink(autoConsume: false)
        let pair = try MuxHandlerTests.Pair(services: [sink])
        let stream = try XCTUnwrap(pair.clientMux.openStream(protocol: sink.protocolName) { _ in })
        var ended: MuxStreamEnd?
        stream.onEnd = { ended = $0 }
        try pair.pump()
        let overflowResets = MuxStreamReset.total(.overflow)
        let peerResets = MuxStreamReset.total(.peer)
        for _ in 0..<64 { stream.write(ByteBuffer(repeating: 3, count: 64 * 1024)) }  // 4 MiB, never pausing
        XCTAssertEqual(ended, .reset)
        XCTAssertLessThanOrEqual(pair.clientMux.heldOutboundBytes, 256 * 1024 + MuxStream.maxOverflowBytes)
        XCTAssertEqual(MuxStreamReset.total(.overflow), overflowResets + 1, "the reset is counted with its reason")
        try pair.pump()
        XCTAssertGreaterThanOrEqual(MuxStreamReset.total(.peer), peerResets + 1, "and the other side counts a reset by its peer")
    }

    func test_sessionSilentFor95SecondsIsClosedAndOneThatSpeaksIsNot() throws {
        let silent = try establishedServer(MuxHandler(role: .server))
        let talking = try establishedServer(MuxHandler(role: .server))
        for second in 1...130 {
            silent.embeddedEventLoop.advanceTime(by: .seconds(1))
            talking.embeddedEventLoop.advanceTime(by: .seconds(1))
            if second % 20 == 0 { try talking.writeInbound(frame(.ping, [.ack], 0, 999)) }
            while try silent.readOutbound(as: ByteBuffer.self) != nil {}
            while try talking.readOutbound(as: ByteBuffer.self) != nil {}
        }
        XCTAssertFalse(silent.isActive, "three missed pings (95 s of silence) close the session")
        XCTAssertTrue(talking.isActive, "a peer heard from every 20 s stays")
        _ = try? talking.finish()
    }

    func test_controlStreamsBeyondTheNodeBudgetAreResetAndAClosedOneFreesItsPlace() throws {
        let budget = SharedBudget(capacity: 2)
        let pair = try MuxHandlerTests.Pair(services: [])
        pair.serverMux.setControlServices([PingService()], streamBudget: budget)
        var ends: [MuxStreamEnd?] = [nil, nil, nil]
        var streams: [MuxStream] = []
        for i in 0..<3 {
            let s = try XCTUnwrap(pair.clientMux.openStream(protocol: "/ipfs/ping/1.0.0") { _ in })
            s.onEnd = { ends[i] = $0 }
            streams.append(s)
        }
        try pair.pump()
        XCTAssertEqual(budget.inUse, 2, "two streams are counted against the node's budget")
        XCTAssertNil(ends[0])
        XCTAssertNil(ends[1])
        XCTAssertEqual(ends[2], .reset, "the third is beyond the budget")
        streams[0].reset()
        try pair.pump()
        XCTAssertEqual(budget.inUse, 1, "a stream that ends gives its place back")
    }

    func test_pingerThatKeepsSendingWhileItsAnswersCannotGoOutIsReset() throws {
        let pair = try MuxHandlerTests.Pair(services: [])
        pair.serverMux.setControlServices([PingService()], streamBudget: SharedBudget(capacity: 8))
        let stream = try XCTUnwrap(pair.clientMux.openStream(protocol: "/ipfs/ping/1.0.0") { _ in })
        var ended: MuxStreamEnd?
        stream.onEnd = { ended = $0 }
        stream.onData = { _ in }  // answers read but never consumed: the server's send window closes
        for _ in 0..<64 where ended == nil {
            if stream.isWritable { stream.write(ByteBuffer(repeating: 1, count: 16 * 1024)) }
            try pair.pump()
        }
        XCTAssertEqual(ended, .reset, "more than \(ControlSessionLimits.unansweredPingBytes) bytes of unanswered pings reset the stream")
        XCTAssertLessThanOrEqual(pair.serverMux.heldOutboundBytes, ControlSessionLimits.backlogPerSession)
    }
}
