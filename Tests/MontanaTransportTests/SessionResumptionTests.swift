import MontanaCrypto
@testable import MontanaTransport
import MontanaWire
import NIOCore
import NIOEmbedded
import XCTest

/// Resumption (PROTOCOL.md 5.3) on real sessions: Noise_PQ XX done for real between an initiator
/// and a responder `SessionChannel`, over carriers that are embedded channels on one loop whose
/// bytes the test carries (or drops, as a censor would).
final class SessionResumptionTests: XCTestCase {
    /// Collects the plaintext session stream a side receives.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes: [UInt8] = []
        var events: [SessionCarrierEvent] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            bytes += Array(unwrapInboundIn(data).readableBytesView)
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? SessionCarrierEvent { events.append(e) }
            context.fireUserInboundEventTriggered(event)
        }
    }

    final class Pair {
        let loop = EmbeddedEventLoop()
        let registry: ResumableSessions
        let initiator: SessionChannel
        let responder: SessionChannel
        let initiatorSink = Sink()
        let responderSink = Sink()
        var a: EmbeddedChannel  // the initiator's carrier
        var b: EmbeddedChannel  // the responder's carrier
        var lost: [String] = []

        init(limits: ResumableSessions.Limits = ResumableSessions.Limits(), initiatorFeatures: UInt32 = 1) throws {
            registry = ResumableSessions(limits: limits)
            let server = try IdentityKey.generate(), client = try IdentityKey.generate()
            initiator = SessionChannel(eventLoop: loop, holdTime: .seconds(20))
            responder = SessionChannel(eventLoop: loop, holdTime: .seconds(60), registry: registry)
            let features = { (v: UInt32) in TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(v))]) }
            let initPayload = features(initiatorFeatures)
            try initiator.pipeline.syncOperations.addHandler(SessionCryptoHandler(
                role: .initiator(identity: client, responder: server.nodeID, payload: { [initPayload] _ in initPayload })))
            try initiator.pipeline.syncOperations.addHandler(initiatorSink)
            try responder.pipeline.syncOperations.addHandler(SessionCryptoHandler(
                role: .responder(identity: server, payload: features(1), admit: { _, _ in SessionAdmission() })))
            try responder.pipeline.syncOperations.addHandler(responderSink)
            a = EmbeddedChannel(loop: loop)
            b = EmbeddedChannel(loop: loop)
            initiator.onCarrierLost = { [unowned self] in self.lost.append($0) }
            try initiator.installLink(in: a, makeCurrent: true)
            try responder.installLink(in: b, makeCurrent: true)
        }

        /// Carries what each side wrote to the other; `dropFromA` drops the initiator's bytes (a
        /// black hole in one direction).
        func shuttle(dropFromA: Bool = false, rounds: Int = 64) throws {
            for _ in 0..<rounds {
                var moved = false
                while let out = try a.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    if !dropFromA { try b.writeInbound(out) }
                }
                while let out = try b.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    try a.writeInbound(out)
                }
                loop.run()
                if !moved { return }
            }
        }
    }

    private func connect(_ channel: EmbeddedChannel) throws {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
    }

    /// Builds a pair with a session established over carriers a and b.
    private func established(limits: ResumableSessions.Limits = ResumableSessions.Limits(), initiatorFeatures: UInt32 = 1) throws -> Pair {
        let p = try Pair(limits: limits, initiatorFeatures: initiatorFeatures)
        try connect(p.b)
        try connect(p.a)
        try p.shuttle()
        XCTAssertNotNil(p.initiator.crypto?.established, "the handshake completed")
        XCTAssertNotNil(p.responder.crypto?.established)
        return p
    }

    private func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    private func write(_ session: SessionChannel, _ bytes: [UInt8]) {
        session.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
    }

    /// Drops both carriers (as a killed front would) and resumes over new ones.
    private func resume(_ p: Pair) throws {
        p.a.pipeline.fireChannelInactive()
        p.b.pipeline.fireChannelInactive()
        p.loop.run()
        XCTAssertFalse(p.initiator.isAttached, "the initiator waits without a carrier")
        XCTAssertFalse(p.responder.isAttached)
        XCTAssertTrue(p.initiator.isActive && p.responder.isActive, "both sessions live on")
        p.a = EmbeddedChannel(loop: p.loop)
        p.b = EmbeddedChannel(loop: p.loop)
        try p.b.pipeline.syncOperations.addHandler(ResumeResponderHandler(registry: p.registry, observer: NoTransportObserver()))
        let done = p.loop.makePromise(of: Void.self)
        let request = try XCTUnwrap(p.initiator.resumeRequest(nonce: [UInt8](repeating: 7, count: 32)))
        try p.a.pipeline.syncOperations.addHandler(ResumeInitiatorHandler(session: p.initiator, request: request, promise: done))
        try connect(p.b)
        try connect(p.a)
        try p.shuttle()
        try done.futureResult.wait()
    }

    func test_noByteIsLostOrRepeatedWhenTheCarrierBreaksMidStream() throws {
        let p = try established()
        let up1 = bytes(300_000, seed: 1), down1 = bytes(200_000, seed: 2)
        write(p.initiator, up1)
        write(p.responder, down1)
        // Only some of the initiator's frames get through before the carrier dies.
        let frames = (0..<3).compactMap { _ in try? p.a.readOutbound(as: ByteBuffer.self) }
        for f in frames { try p.b.writeInbound(f) }
        p.loop.run()
        let up2 = bytes(100_000, seed: 3)
        try resume(p)
        // Written while no carrier was attached: kept and sent after the resumption.
        write(p.initiator, up2)
        try p.shuttle()
        XCTAssertEqual(p.responderSink.bytes.count, up1.count + up2.count, "every byte arrived once")
        XCTAssertTrue(p.responderSink.bytes == up1 + up2, "in order")
        XCTAssertEqual(p.initiatorSink.bytes.count, down1.count)
        XCTAssertTrue(p.initiatorSink.bytes == down1, "the other direction too")
        XCTAssertEqual(p.initiator.resumptions, 1)
        XCTAssertEqual(p.responder.resumptions, 1)
        XCTAssertTrue(p.initiatorSink.events.contains { if case .resumed = $0 { return true } else { return false } })
        XCTAssertEqual(p.registry.counts.resumed, 1)
    }

    func test_dataWrittenWhileDetachedWaitsForTheNextCarrier() throws {
        let p = try established()
        p.a.pipeline.fireChannelInactive()
        p.loop.run()
        XCTAssertEqual(p.lost.count, 1, "the owner hears of the loss: \(p.lost)")
        XCTAssertFalse(p.initiator.isWritable, "writers pause without a carrier")
        write(p.initiator, bytes(5000, seed: 9))
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 5000, "kept, not lost")
    }

    func test_aReplayedResumeRequestIsRefusedAndTheSessionKeepsItsCarrier() throws {
        let p = try established()
        p.a.pipeline.fireChannelInactive()
        p.b.pipeline.fireChannelInactive()
        p.loop.run()
        let request = try XCTUnwrap(p.initiator.resumeRequest(nonce: [UInt8](repeating: 5, count: 32)))
        var framed = ByteBuffer(integer: UInt16(request.count))
        framed.writeBytes(request)
        // The genuine resumption.
        let b2 = EmbeddedChannel(loop: p.loop)
        try b2.pipeline.syncOperations.addHandler(ResumeResponderHandler(registry: p.registry, observer: NoTransportObserver()))
        try connect(b2)
        try b2.writeInbound(framed)
        p.loop.run()
        let answer = try XCTUnwrap(try b2.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(answer.getInteger(at: answer.readerIndex + 2, as: UInt8.self), 0, "accepted")
        XCTAssertTrue(p.responder.carrier === b2, "the responder took the new carrier")
        // A front (or anyone on the path) replays the captured request on another circuit.
        let b3 = EmbeddedChannel(loop: p.loop)
        try b3.pipeline.syncOperations.addHandler(ResumeResponderHandler(registry: p.registry, observer: NoTransportObserver()))
        try connect(b3)
        try b3.writeInbound(framed)
        p.loop.run()
        let refusal = try XCTUnwrap(try b3.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(Array(refusal.readableBytesView), [0, 73, 1] + [UInt8](repeating: 0, count: 72), "refused like an unknown session")
        XCTAssertTrue(p.responder.carrier === b2, "the replay did not take the session over")
        XCTAssertTrue(p.responder.isAttached)
        XCTAssertEqual(p.registry.counts.refused, 1)
    }

    func test_aRequestWithoutTheSecretIsRefused() throws {
        let p = try established()
        let id = try XCTUnwrap(p.responder.crypto?.established?.sessionID)
        let forged = Resumption.request(sessionID: id, resumeSecret: [UInt8](repeating: 1, count: 32), received: 0,
                                        nonce: [UInt8](repeating: 2, count: 32))
        let b2 = EmbeddedChannel(loop: p.loop)
        try b2.pipeline.syncOperations.addHandler(ResumeResponderHandler(registry: p.registry, observer: NoTransportObserver()))
        try connect(b2)
        var framed = ByteBuffer(integer: UInt16(forged.count))
        framed.writeBytes(forged)
        try b2.writeInbound(framed)
        p.loop.run()
        let refusal = try XCTUnwrap(try b2.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(refusal.getInteger(at: refusal.readerIndex + 2, as: UInt8.self), 1)
        XCTAssertTrue(p.responder.carrier === p.b, "the session kept its carrier")
    }

    func test_withoutTheFeatureOnBothEndsALostCarrierEndsTheSession() throws {
        let p = try established(initiatorFeatures: 0)
        XCTAssertEqual(p.initiator.crypto?.resumable, false)
        write(p.initiator, bytes(1000, seed: 4))
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 0, "nothing is kept when resumption is off")
        p.b.pipeline.fireChannelInactive()
        p.loop.run()
        XCTAssertFalse(p.responder.isActive, "the session closed with its carrier")
    }

    func test_retentionPausesWritersAt4MiBHoldsABurstAndGivesResumptionUpPastTheHeldLimit() throws {
        let p = try established()
        let chunk = bytes(1 << 20, seed: 6)
        for _ in 0..<4 { write(p.initiator, chunk) }
        XCTAssertGreaterThanOrEqual(p.initiator.crypto?.retainedBytes ?? 0, SessionCryptoHandler.retentionLimit)
        XCTAssertFalse(p.initiator.isWritable, "stream writers pause at 4 MiB unacknowledged")
        // Writers that read before they saw the pause (a burst): held, not sealed, resumption kept.
        for _ in 0..<5 { write(p.initiator, chunk) }
        XCTAssertEqual(p.initiator.crypto?.heldBytes, 5 << 20)
        XCTAssertLessThanOrEqual(p.initiator.crypto?.retainedBytes ?? 0, SessionCryptoHandler.retentionLimit)
        XCTAssertEqual(p.initiator.crypto?.resumable, true, "a burst past the pause does not cost resumption")
        XCTAssertFalse(p.initiator.isWritable)
        // A writer that ignores the pause: past 32 MiB held, resumption is given up, memory is not.
        let more = SessionCryptoHandler.heldLimit / (1 << 20)
        for _ in 0..<more { write(p.initiator, chunk) }
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 0)
        XCTAssertEqual(p.initiator.crypto?.heldBytes, 0, "what was held is sent")
        XCTAssertEqual(p.initiator.crypto?.resumable, false, "resumption given up for this session")
        XCTAssertTrue(p.initiator.isWritable, "and writers go on")
    }

    func test_heldDataIsSentInOrderOnceAcknowledgementsMakeRoom() throws {
        let p = try established()
        let data = bytes(6 << 20, seed: 12)
        var offset = 0
        while offset < data.count {
            write(p.initiator, Array(data[offset..<min(data.count, offset + (1 << 20))]))
            offset += 1 << 20
        }
        XCTAssertEqual(p.initiator.crypto?.heldBytes, 2 << 20, "4 MiB kept and sent, the rest held")
        for _ in 0..<8 {
            try p.shuttle()
            p.loop.advanceTime(by: .milliseconds(250))
        }
        try p.shuttle()
        XCTAssertEqual(p.initiator.crypto?.heldBytes, 0)
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 0, "the responder acknowledged everything")
        XCTAssertEqual(p.responderSink.bytes, data, "every byte arrived once, in order")
        XCTAssertTrue(p.initiator.isWritable)
    }

    func test_retentionGrowsWhileThePeerAcknowledgesAndGivesTheGrowthBack() throws {
        let p = try established()
        let budgetBefore = SessionCryptoHandler.retentionBudget.inUse
        write(p.initiator, bytes(1 << 20, seed: 21))
        try p.shuttle()
        p.loop.advanceTime(by: .milliseconds(250))
        try p.shuttle()
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 0, "the peer acknowledges")
        // A long fast path: more than 4 MiB in flight before the next ACK. The limit grows in
        // 4 MiB steps and writers keep going, up to 20 MiB (the whole 16 MiB budget).
        let chunk = bytes(1 << 20, seed: 22)
        for _ in 0..<6 { write(p.initiator, chunk) }
        XCTAssertEqual(p.initiator.crypto?.retentionCap, 8 << 20)
        XCTAssertTrue(p.initiator.isWritable, "past 4 MiB while the peer acknowledges, writers are not paused")
        for _ in 0..<(SessionCryptoHandler.maxRetention >> 20) { write(p.initiator, chunk) }
        XCTAssertEqual(p.initiator.crypto?.retentionCap, SessionCryptoHandler.maxRetention, "never past 20 MiB")
        XCTAssertFalse(p.initiator.isWritable, "at 20 MiB writers pause")
        XCTAssertEqual(SessionCryptoHandler.retentionBudget.inUse, budgetBefore + UInt64(SessionCryptoHandler.maxRetention - SessionCryptoHandler.retentionLimit))
        XCTAssertEqual(p.initiator.crypto?.resumable, true)
        for _ in 0..<40 {
            try p.shuttle()
            p.loop.advanceTime(by: .milliseconds(100))
        }
        try p.shuttle()
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 0, "everything acknowledged")
        XCTAssertEqual(p.initiator.crypto?.retentionCap, SessionCryptoHandler.retentionLimit, "the growth goes back")
        XCTAssertEqual(SessionCryptoHandler.retentionBudget.inUse, budgetBefore)
        XCTAssertTrue(p.initiator.isWritable)
    }

    func test_acknowledgementsReleaseRetention() throws {
        let p = try established()
        write(p.initiator, bytes(500_000, seed: 8))
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 500_000)
        try p.shuttle()
        p.loop.advanceTime(by: .milliseconds(250))
        try p.shuttle()
        XCTAssertEqual(p.initiator.crypto?.retainedBytes, 0, "the responder acknowledged everything")
    }

    func test_theInitiatorGivesASilentCarrierUpAfterTheAckDeadline() throws {
        let p = try established()
        write(p.initiator, bytes(10_000, seed: 3))
        try p.shuttle(dropFromA: true)  // a black hole towards the front
        p.loop.advanceTime(by: .milliseconds(750))
        XCTAssertTrue(p.initiator.isAttached, "not before the deadline")
        p.loop.advanceTime(by: .milliseconds(600))
        XCTAssertFalse(p.initiator.isAttached, "given up after ~1 s without acknowledgement")
        XCTAssertTrue(p.initiator.isActive, "the session itself lives on")
        XCTAssertTrue(p.lost.first?.contains("no acknowledgement") ?? false, "\(p.lost)")
    }

    func test_aTamperedFrameCostsTheCarrierNotTheSession() throws {
        let p = try established()
        var garbage = ByteBuffer(integer: UInt16(40))
        garbage.writeBytes([UInt8](repeating: 0xAB, count: 40))
        try p.b.writeInbound(garbage)
        p.loop.run()
        XCTAssertTrue(p.responder.isActive, "a front flipping bits cannot end the session")
        XCTAssertFalse(p.responder.isAttached, "it loses that carrier")
    }

    func test_detachedSessionsBeyondTheCountOrBudgetAreClosedOldestFirst() throws {
        var limits = ResumableSessions.Limits()
        limits.maxDetached = 2
        limits.detachedBudget = 1000
        let registry = ResumableSessions(limits: limits)
        let loop = EmbeddedEventLoop()
        let sessions = (0..<4).map { _ in SessionChannel(eventLoop: loop, registry: registry) }
        for (i, s) in sessions.enumerated() {
            XCTAssertTrue(registry.register([UInt8(i)] + [UInt8](repeating: 0, count: 15), secret: [UInt8](repeating: UInt8(i), count: 32), session: s))
        }
        let id = { (i: Int) in [UInt8(i)] + [UInt8](repeating: 0, count: 15) }
        XCTAssertTrue(registry.detached(id(0), retained: 100).isEmpty)
        XCTAssertTrue(registry.detached(id(1), retained: 100).isEmpty)
        let overCount = registry.detached(id(2), retained: 100)
        XCTAssertTrue(overCount.count == 1 && overCount[0] === sessions[0], "the third detached session evicts the oldest")
        let overBudget = registry.detached(id(3), retained: 900)
        XCTAssertTrue(overBudget.count == 1 && overBudget[0] === sessions[1], "1100 bytes > 1000: the oldest goes")
        XCTAssertEqual(registry.counts.detached, 2)
        XCTAssertEqual(registry.counts.detachedBytes, 1000)
        XCTAssertEqual(registry.counts.evicted, 2)
    }

    func test_theTableHoldsAtMostMaxSessions() throws {
        var limits = ResumableSessions.Limits()
        limits.maxSessions = 3
        let registry = ResumableSessions(limits: limits)
        let loop = EmbeddedEventLoop()
        let results = (0..<5).map { i in
            registry.register([UInt8(i)] + [UInt8](repeating: 0, count: 15), secret: [], session: SessionChannel(eventLoop: loop, registry: registry))
        }
        XCTAssertEqual(results, [true, true, true, false, false], "beyond the bound a session simply cannot resume")
        XCTAssertEqual(registry.counts.registered, 3)
    }
}
