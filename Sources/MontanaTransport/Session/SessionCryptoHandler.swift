import Foundation
import MontanaCrypto
import MontanaWire
import NIOCore

/// Noise_PQ XX over a carrier, then transport frames (PROTOCOL.md sections 4-5). Below it flow
/// carrier bytes; above it flows the plaintext session stream (what yamux reads and writes).
/// DATA records carry the stream; ACKs are sent every 64 KiB or 200 ms and checked against what
/// was sent. Any failure closes the carrier; a responder never answers garbage.
///
/// In a `SessionChannel`, when both ends advertise resumption (`features` bit 0), the handler keeps
/// every DATA byte the peer has not acknowledged (at most `retentionLimit` before stream writers
/// pause) so the session can outlive its carrier: on a new carrier both ends send again what the
/// other did not receive (PROTOCOL.md 5.3). A carrier whose frames do not open (a front tampering
/// with them) is then given up like a lost one instead of ending the session.
public final class SessionCryptoHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    static let ackEvery = 64 * 1024
    static let ackDelay = TimeAmount.milliseconds(200)
    static let handshakeTimeout = TimeAmount.seconds(30)
    /// Session bytes per DATA record: large records keep AEAD overhead low.
    static let maxDataRecord = TransportRecord.maxData
    /// `features` bit 0: this end can resume sessions (PROTOCOL.md 5.3).
    public static let featureResume: UInt32 = 1
    /// Unacknowledged DATA kept for resumption: at 4 MiB stream writers pause (PROTOCOL.md 5.2);
    /// a peer that lets it pass `retentionHardLimit` (it does not acknowledge) loses resumption for
    /// this session and the copy is dropped, so the memory stays bounded either way.
    public static let retentionLimit = 4 * 1024 * 1024
    public static let retentionHardLimit = 8 * 1024 * 1024
    /// On a long, fast path 4 MiB per round trip caps a session (80 MB/s at 50 ms): a session that
    /// reaches its limit while its peer is still acknowledging grows it by `retentionStep` up to
    /// `maxRetention` (20 MiB: 400 MB/s at 50 ms), drawing from `retentionBudget` (process-wide,
    /// 16 MiB: one long fast transfer at full speed, or several sharing it; an exit serving a
    /// thousand streams over a few sessions keeps its memory — with 32 MiB its peak heap with 1,000
    /// streams was up to 74 MiB, docs/BENCHMARKS.md), and gives the growth back once everything it
    /// sent is acknowledged. The hard limit moves with it (limit + 4 MiB).
    public static let maxRetention = 20 * 1024 * 1024
    public static let retentionStep = 4 * 1024 * 1024
    public static let retentionBudget = SharedBudget(capacity: 16 * 1024 * 1024)
    /// DATA written while the copy is at `retentionLimit` waits here, unsealed, until ACKs make
    /// room: writers already see the session unwritable, so what arrives is the burst of writers
    /// that read before they saw it (an exit reading 256 egress sockets in one turn: 256 × 64 KiB =
    /// 16 MiB). Past this the writers ignore the pause: resumption is given up, as at the hard limit.
    public static let heldLimit = 32 * 1024 * 1024
    /// The initiator gives its carrier up when data is outstanding and no acknowledgement has
    /// advanced for this long, or for 4 × the smoothed acknowledgement time when that is longer: a
    /// censor's silent drop (a black hole, a byte cap) is noticed in about a second.
    public static let minAckDeadline = TimeAmount.milliseconds(1000)
    static let ackCheckInterval = TimeAmount.milliseconds(250)

    private enum State {
        case initiator(NoiseInitiator, awaiting: Int)
        case responder(NoiseResponder, awaiting: Int)
        case established(send: TransportCipher, receive: TransportCipher)
        /// The carrier is gone; the session waits for a resumption (counters and retention kept).
        case detached
        case closed
    }

    private let role: SessionRole
    private var state: State
    private var handshakeBuffer = FrameDeframer()
    private var deframer = FrameDeframer()
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var bytesSent: UInt64 = 0
    private var bytesReceived: UInt64 = 0
    private var bytesAcked: UInt64 = 0
    private var ackTimer: Scheduled<Void>?
    private var handshakeTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    public private(set) var established: SessionEstablished?
    private let onFailure: (@Sendable (SessionError) -> Void)?
    private var sentFirst = false
    /// The session's resumption secret and id, once established.
    private var resumeSecret: [UInt8] = []
    private var sessionID: [UInt8] = []
    /// Both ends advertised resumption and this handler runs in a `SessionChannel`.
    public private(set) var resumable = false
    /// DATA handed to the carrier and not acknowledged yet (only while `resumable`), oldest first.
    /// Invariant: `peerAcked + retainedBytes == bytesSent`.
    private var retained = CircularBuffer<ByteBuffer>()
    public private(set) var retainedBytes = 0
    private var peerAcked: UInt64 = 0
    private var retentionFull = false
    /// This session's retention limit: `retentionLimit` plus growth held from `retentionBudget`.
    public private(set) var retentionCap = SessionCryptoHandler.retentionLimit
    /// Writes waiting for the kept copy to drop under `retentionLimit` (not sealed, not counted).
    private var held = CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)>()
    public private(set) var heldBytes = 0
    /// Since when data is outstanding with no acknowledgement advancing (uptime ns), nil when none is.
    private var ackWaitSince: UInt64?
    /// When an authenticated frame last arrived on the carrier (uptime ns): a carrier that keeps
    /// delivering is not silent, even if a busy peer is late with its acknowledgements.
    private var lastHeard: UInt64 = 0
    /// Smoothed time (ns) from a wait's start to the acknowledgement that ended it.
    private var smoothedAck: UInt64 = 0
    private var ackCheck: RepeatedTask?
    /// Resumptions this handler went through (for status and tests).
    public private(set) var resumptions = 0
    private var session: SessionChannel? { context?.channel as? SessionChannel }

    public init(role: SessionRole, onFailure: (@Sendable (SessionError) -> Void)? = nil) {
        self.role = role
        self.onFailure = onFailure
        switch role {
        case .initiator(let identity, let responder, _):
            state = .initiator(NoiseInitiator(identity: identity, expectedResponder: responder), awaiting: 2)
        case .responder(let identity, _, _):
            state = .responder(NoiseResponder(identity: identity), awaiting: 1)
        }
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        (context.channel as? SessionChannel)?.crypto = self
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.handshakeTimeout) { [weak self] in
            guard let self, self.established == nil, let ctx = self.context else { return }
            self.fail(ctx, .handshake("timed out"))
        }
        if context.channel.isActive { sendFirstMessage(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        sendFirstMessage(context)
        context.fireChannelActive()
    }

    /// The initiator's msg1, once the carrier is connected (it rides right behind the preface).
    private func sendFirstMessage(_ context: ChannelHandlerContext) {
        if case .initiator(var noise, let awaiting) = state, !sentFirst {
            sentFirst = true
            do {
                let msg1 = try noise.message1()
                state = .initiator(noise, awaiting: awaiting)
                writeHandshake(context, msg1)
                context.flush()
            } catch {
                fail(context, .handshake("\(error)"))
            }
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        ackTimer?.cancel()
        handshakeTimer?.cancel()
        ackCheck?.cancel()
        releaseRetentionGrowth()
        self.context = nil
    }

    private func writeHandshake(_ context: ChannelHandlerContext, _ message: [UInt8]) {
        var buffer = context.channel.allocator.buffer(capacity: message.count + 2)
        buffer.writeInteger(UInt16(message.count))
        buffer.writeBytes(message)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        switch state {
        case .closed, .detached:
            return
        case .established:
            deframer.append(buffer.readableBytesView)
            processFrames(context)
        case .initiator, .responder:
            handshakeBuffer.append(buffer.readableBytesView)
            buffer.moveReaderIndex(to: buffer.writerIndex)
            processHandshake(context)
        }
    }

    private func processHandshake(_ context: ChannelHandlerContext) {
        while let body = handshakeBuffer.nextBody() {
            let message = Array(body)
            do {
                switch state {
                case .responder(var noise, 1):
                    try noise.readMessage1(message)
                    guard case .responder(_, let payload, _) = role else { return }
                    let msg2 = try noise.message2(payload: payload)
                    state = .responder(noise, awaiting: 3)
                    writeHandshake(context, msg2)
                    context.flush()
                case .responder(var noise, _):
                    let peer = try noise.readMessage3(message)
                    guard case .responder(_, let payload, let admit) = role, let keys = noise.keys else { return }
                    let admission: SessionAdmission
                    do {
                        admission = try admit(peer, noise.hashBeforePayload3)
                    } catch {
                        fail(context, .admissionRefused("\(error)"))
                        return
                    }
                    establish(context, keys: keys, peer: peer, admission: admission, ownPayload: payload)
                case .initiator(var noise, _):
                    let peer = try noise.readMessage2(message)
                    guard case .initiator(_, _, let payload) = role else { return }
                    var msg3Payload: [UInt8] = []
                    let msg3 = try noise.message3(payload: { h in
                        msg3Payload = try payload(h)
                        return msg3Payload
                    })
                    guard let keys = noise.keys else { return }
                    writeHandshake(context, msg3)
                    establish(context, keys: keys, peer: peer, admission: SessionAdmission(), ownPayload: msg3Payload)
                    context.flush()
                default:
                    return
                }
            } catch {
                fail(context, .handshake("\(error)"))
                return
            }
            if case .established = state {
                // Frames may follow the last handshake message in the same read.
                let rest = handshakeBuffer.takeAll()
                if !rest.isEmpty {
                    deframer.append(rest)
                    processFrames(context)
                }
                return
            }
        }
        if handshakeBuffer.bufferedCount > NoisePQ.maxMessageSize + 2 {
            fail(context, .handshake("oversized handshake message"))
        }
    }

    /// The `features` value of a msg2/msg3 payload (0 when absent or malformed).
    static func features(of payload: [UInt8]) -> UInt32 {
        guard let tlv = (try? TLV.decode(payload))?.first(where: { $0.type == PayloadTLV.features }), tlv.value.count == 4 else { return 0 }
        return tlv.value.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    private func establish(_ context: ChannelHandlerContext, keys: NoiseSessionKeys, peer: NoisePeer, admission: SessionAdmission,
                           ownPayload: [UInt8]) {
        handshakeTimer?.cancel()
        state = .established(send: TransportCipher(key: keys.sendKey), receive: TransportCipher(key: keys.receiveKey))
        let event = SessionEstablished(peer: peer, sessionID: keys.sessionID, admission: admission)
        established = event
        resumeSecret = keys.resumeSecret
        sessionID = keys.sessionID
        let both = Self.features(of: ownPayload) & Self.features(of: peer.payload)
        resumable = both & Self.featureResume != 0 && session != nil
        if resumable, case .initiator = role { startAckCheck(context) }
        if resumable { session?.established(sessionID: keys.sessionID, resumeSecret: keys.resumeSecret) }
        context.fireUserInboundEventTriggered(event)
        let queued = pendingWrites
        pendingWrites = []
        for (buffer, promise) in queued { writeData(context, buffer, promise: promise) }
        if !queued.isEmpty { context.flush() }
    }

    private func processFrames(_ context: ChannelHandlerContext) {
        var delivered = false
        var heard = false
        defer { if heard { lastHeard = uptime() } }
        while case .established(let send, var receive) = state, let body = deframer.nextBody() {
            let plain: Data
            let record: TransportRecord
            do {
                plain = try receive.openData(body)
                heard = true
                // DATA, the bulk case, goes up without decoding into an intermediate array.
                if plain.first == 0x00 {
                    state = .established(send: send, receive: receive)
                    let count = plain.count - 1
                    guard count > 0 else { continue }
                    bytesReceived += UInt64(count)
                    scheduleAck(context)
                    var buffer = context.channel.allocator.buffer(capacity: count)
                    buffer.writeBytes(plain.dropFirst())
                    context.fireChannelRead(wrapInboundOut(buffer))
                    delivered = true
                    continue
                }
                record = try TransportRecord.decode(Array(plain))
            } catch {
                // A frame that does not open came from the carrier (a front can flip bits, not
                // forge): a resumable session gives that carrier up and waits for another.
                if let session, session.dropCarrier(reason: "a frame did not open: \(error)") { return }
                fail(context, .frame("\(error)"))
                return
            }
            state = .established(send: send, receive: receive)
            switch record {
            case .data:
                continue
            case .ack(let total):
                guard total <= bytesSent else {
                    fail(context, .protocolViolation("ACK beyond the bytes sent"))
                    return
                }
                acknowledged(total)
                releaseHeld(context)
            case .padding:
                continue
            case .close(let reason):
                closeSilently(context, .closedByPeer(reason))
                return
            }
        }
        if delivered { context.fireChannelReadComplete() }
    }

    private func scheduleAck(_ context: ChannelHandlerContext) {
        if bytesReceived - bytesAcked >= UInt64(Self.ackEvery) {
            sendAck(context)
            context.flush()
        } else if ackTimer == nil {
            ackTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.ackDelay) { [weak self] in
                guard let self, let ctx = self.context else { return }
                self.ackTimer = nil
                self.sendAck(ctx)
                ctx.flush()
            }
        }
    }

    private func sendAck(_ context: ChannelHandlerContext) {
        guard bytesReceived > bytesAcked else { return }
        bytesAcked = bytesReceived
        ackTimer?.cancel()
        ackTimer = nil
        writeRecord(context, .ack(bytesReceived), promise: nil)
    }

    private func writeRecord(_ context: ChannelHandlerContext, _ record: TransportRecord, promise: EventLoopPromise<Void>?) {
        guard case .established(var send, let receive) = state else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        do {
            let frame = try send.seal(record.encode())
            state = .established(send: send, receive: receive)
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: frame)), promise: promise)
        } catch {
            promise?.fail(error)
            fail(context, .frame("\(error)"))
        }
    }

    private func writeData(_ context: ChannelHandlerContext, _ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        if buffer.readableBytes == 0 {
            promise?.succeed()
            return
        }
        guard case .established = state else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        retain(buffer)
        bytesSent += UInt64(buffer.readableBytes)
        seal(context, buffer, promise: promise)
    }

    /// Seals `buffer` into DATA records and writes them (counted and retained by the caller).
    private func seal(_ context: ChannelHandlerContext, _ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        var buffer = buffer
        guard case .established(var send, let receive) = state else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var plain: [UInt8] = []
        plain.reserveCapacity(min(buffer.readableBytes, Self.maxDataRecord) + 1)
        while buffer.readableBytes > 0 {
            let n = min(buffer.readableBytes, Self.maxDataRecord)
            plain.removeAll(keepingCapacity: true)
            plain.append(0x00)  // DATA
            plain.append(contentsOf: buffer.readableBytesView.prefix(n))
            buffer.moveReaderIndex(forwardBy: n)
            do {
                let parts = try send.sealParts(plain)
                var frame = context.channel.allocator.buffer(capacity: Int(parts.length) + 2)
                frame.writeInteger(parts.length)
                frame.writeBytes(parts.ciphertext)
                frame.writeBytes(parts.tag)
                context.write(wrapOutboundOut(frame), promise: buffer.readableBytes == 0 ? promise : nil)
            } catch {
                state = .established(send: send, receive: receive)
                promise?.fail(error)
                fail(context, .frame("\(error)"))
                return
            }
        }
        state = .established(send: send, receive: receive)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        if resumable, buffer.readableBytes > 0, retainedBytes >= retentionCap || !held.isEmpty {
            switch state {
            case .established, .detached:
                hold(context, buffer, promise: promise)
                return
            default: break
            }
        }
        switch state {
        case .established:
            writeData(context, buffer, promise: promise)
        case .detached:
            // Kept for the next carrier; the stream writers already see the session unwritable.
            if buffer.readableBytes > 0 {
                retain(buffer)
                bytesSent += UInt64(buffer.readableBytes)
            }
            promise?.succeed()
        case .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        default:
            pendingWrites.append((buffer, promise))
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, case .established = state {
            sendAck(context)
            writeRecord(context, .close(TransportRecord.CloseReason.normal), promise: nil)
            context.flush()
            state = .closed
        } else if mode == .all, case .detached = state {
            state = .closed
        }
        dropRetention()
        if mode == .all { failHeld() }
        context.close(mode: mode, promise: promise)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if established == nil, case .closed = state {} else if established == nil {
            onFailure?(.handshake("carrier closed during the handshake"))
        }
        state = .closed
        dropRetention()
        failHeld()
        ackCheck?.cancel()
        ackCheck = nil
        for (_, promise) in pendingWrites { promise?.fail(ChannelError.ioOnClosedChannel) }
        pendingWrites = []
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The peer (or the front splicing to it) ended its side: the session is over. Without
        // this a half-closed carrier would look alive and streams would wait for their timeouts.
        if let e = event as? ChannelEvent, e == .inputClosed {
            if established == nil {
                fail(context, .handshake("the peer closed the connection"))
            } else {
                closeSilently(context, .closedByPeer(TransportRecord.CloseReason.normal))
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, .frame("carrier error: \(error)"))
    }

    private func fail(_ context: ChannelHandlerContext, _ error: SessionError) {
        if case .closed = state { return }
        state = .closed
        onFailure?(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func closeSilently(_ context: ChannelHandlerContext, _ error: SessionError) {
        state = .closed
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    // MARK: retention and resumption (PROTOCOL.md 5.2-5.3)

    /// The loop's clock (virtual in tests with an embedded loop).
    private func uptime() -> UInt64 { (context?.eventLoop.now ?? .now()).uptimeNanoseconds }

    private func hold(_ context: ChannelHandlerContext, _ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        held.append((buffer, promise))
        heldBytes += buffer.readableBytes
        guard heldBytes > Self.heldLimit else { return }
        // Writers that ignore the pause: resumption is given up, memory is not.
        resumable = false
        dropRetention()
        session?.forget()
        releaseHeld(context)
    }

    /// Seals held writes while the copy is under `retentionLimit` (all of them once the session
    /// no longer resumes); a detached session keeps them for the next carrier.
    private func releaseHeld(_ context: ChannelHandlerContext) {
        guard case .established = state, !held.isEmpty else { return }
        while let (buffer, promise) = held.first, !resumable || retainedBytes < retentionCap {
            held.removeFirst()
            heldBytes -= buffer.readableBytes
            writeData(context, buffer, promise: promise)
        }
        context.flush()
        // Writers stay paused while anything is held.
        if !held.isEmpty, resumable, !retentionFull {
            retentionFull = true
            session?.setRetentionFull(true)
        } else if held.isEmpty, retentionFull, retainedBytes < retentionCap / 2 {
            retentionFull = false
            session?.setRetentionFull(false)
        }
    }

    /// Grows the limit by one step when the budget allows; false at `maxRetention` or without room.
    private func growRetention() -> Bool {
        // Only while the peer acknowledges (the last ACK under a second ago): a peer that stopped
        // must not make the session keep more.
        guard retentionCap < Self.maxRetention, peerAcked > 0, let since = ackWaitSince,
              uptime() &- since < UInt64(Self.minAckDeadline.nanoseconds),
              Self.retentionBudget.reserve(UInt64(Self.retentionStep)) else { return false }
        retentionCap += Self.retentionStep
        return true
    }

    private func releaseRetentionGrowth() {
        guard retentionCap > Self.retentionLimit else { return }
        Self.retentionBudget.release(UInt64(retentionCap - Self.retentionLimit))
        retentionCap = Self.retentionLimit
    }

    private func failHeld() {
        let waiting = held
        held.removeAll()
        heldBytes = 0
        for (_, promise) in waiting { promise?.fail(ChannelError.ioOnClosedChannel) }
    }

    private func retain(_ buffer: ByteBuffer) {
        guard resumable else { return }
        if retained.isEmpty { ackWaitSince = uptime() }
        retained.append(buffer)
        retainedBytes += buffer.readableBytes
        if retainedBytes > retentionCap + Self.retentionHardLimit - Self.retentionLimit {
            // The peer does not acknowledge: resumption is given up, memory is not.
            resumable = false
            dropRetention()
            session?.forget()
            return
        }
        if !retentionFull, retainedBytes >= retentionCap, !growRetention() {
            retentionFull = true
            session?.setRetentionFull(true)
        }
    }

    /// The peer received `total` DATA bytes in order: what it holds is no longer kept.
    private func acknowledged(_ total: UInt64) {
        guard resumable, total > peerAcked else { return }
        var left = total - peerAcked
        while left > 0, var first = retained.first {
            let n = UInt64(first.readableBytes)
            if n <= left {
                retained.removeFirst()
                retainedBytes -= Int(n)
                left -= n
            } else {
                first.moveReaderIndex(forwardBy: Int(left))
                retained[retained.startIndex] = first
                retainedBytes -= Int(left)
                left = 0
            }
        }
        peerAcked = total
        let now = uptime()
        if let since = ackWaitSince, now > since {
            let sample = now - since
            smoothedAck = smoothedAck == 0 ? sample : (smoothedAck * 7 + sample) / 8
        }
        ackWaitSince = retained.isEmpty ? nil : now
        // Everything acknowledged: the path keeps up, the growth goes back to the budget.
        if retained.isEmpty, held.isEmpty { releaseRetentionGrowth() }
        if retentionFull, held.isEmpty, retainedBytes < retentionCap / 2 {
            retentionFull = false
            session?.setRetentionFull(false)
        }
    }

    private func dropRetention() {
        retained.removeAll()
        retainedBytes = 0
        releaseRetentionGrowth()
        ackWaitSince = nil
        if retentionFull {
            retentionFull = false
            session?.setRetentionFull(false)
        }
    }

    /// The initiator's watch for a carrier that went silent: data outstanding and no
    /// acknowledgement advancing for the deadline gives the carrier up.
    private func startAckCheck(_ context: ChannelHandlerContext) {
        ackCheck?.cancel()
        ackCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: Self.ackCheckInterval, delay: Self.ackCheckInterval) { [weak self] task in
            guard let self else {
                task.cancel()
                return
            }
            self.checkAcknowledgements()
        }
    }

    /// The current deadline: `minAckDeadline`, or 4 × the smoothed acknowledgement time.
    public var ackDeadline: TimeAmount {
        .nanoseconds(max(Self.minAckDeadline.nanoseconds, Int64(clamping: smoothedAck.multipliedReportingOverflow(by: 4).partialValue)))
    }

    private func checkAcknowledgements() {
        guard resumable, case .established = state, let waiting = ackWaitSince, let session else { return }
        // Silent means: no acknowledgement advancing *and* nothing at all heard for the deadline.
        let since = max(waiting, lastHeard)
        let now = uptime()
        guard now > since, now - since > UInt64(ackDeadline.nanoseconds) else { return }
        let ms = (now - since) / 1_000_000
        _ = session.dropCarrier(reason: "no acknowledgement for \(ms) ms (the carrier went silent)", since: since)
    }

    /// Whether a lost carrier can be replaced (both ends resume and the session is up).
    public var canResume: Bool {
        guard resumable else { return false }
        switch state {
        case .established, .detached: return true
        default: return false
        }
    }

    /// The carrier is gone: keep counters and retention, drop the old carrier's keys and partial
    /// frame. False when the session cannot resume (it then closes).
    func detach() -> Bool {
        guard canResume else { return false }
        state = .detached
        deframer = FrameDeframer()
        ackTimer?.cancel()
        ackTimer = nil
        ackWaitSince = nil
        return true
    }

    /// The initiator's resume request for a new carrier (`nonce` fresh per attempt).
    func resumeRequest(nonce: [UInt8]) -> [UInt8]? {
        guard case .detached = state, resumable else { return nil }
        return Resumption.request(sessionID: sessionID, resumeSecret: resumeSecret, received: bytesReceived, nonce: nonce)
    }

    /// The responder side of a resumption whose MAC was verified: answers on the (already
    /// adopted) carrier, switches keys and sends again what the initiator did not receive. False
    /// (a refusal written) when the initiator's offset is outside what is kept.
    func acceptResume(_ request: Resumption.Request, nonce: [UInt8]) -> Bool {
        guard let context, canResume else { return false }
        guard request.received >= peerAcked, request.received <= bytesSent else {
            writeHandshake(context, Resumption.refuse(.offsetLost))
            context.flush()
            return false
        }
        let answer = Resumption.accept(request, resumeSecret: resumeSecret, received: bytesReceived, nonce: nonce)
        writeHandshake(context, answer)
        let keys = Resumption.keys(resumeSecret: resumeSecret, initiatorNonce: request.nonce, responderNonce: nonce)
        resumed(context, send: keys.r2i, receive: keys.i2r, peerReceived: request.received)
        return true
    }

    /// The initiator side, step 1: checks the responder's answer to `request` (its MAC proves
    /// the exit holds the session; a front cannot make one).
    func checkResumeAnswer(_ bytes: [UInt8], request: [UInt8]) -> Result<(Resumption.Request, Resumption.Answer), SessionResumeError> {
        guard canResume, let request = try? Resumption.parseRequest(request) else { return .failure(.notResumable) }
        let answer: Resumption.Answer
        do {
            answer = try Resumption.parseAnswer(bytes, to: request, resumeSecret: resumeSecret)
        } catch {
            return .failure(.badAnswer("\(error)"))
        }
        guard answer.status == .ok else { return .failure(.refused(answer.status.rawValue)) }
        guard answer.received >= peerAcked, answer.received <= bytesSent else {
            return .failure(.badAnswer("the exit's offset \(answer.received) is outside \(peerAcked)...\(bytesSent)"))
        }
        return .success((request, answer))
    }

    /// Step 2, once the new carrier is adopted: switch keys and send again what the exit lacks.
    func completeResume(_ request: Resumption.Request, _ answer: Resumption.Answer) {
        guard let context else { return }
        let keys = Resumption.keys(resumeSecret: resumeSecret, initiatorNonce: request.nonce, responderNonce: answer.nonce)
        resumed(context, send: keys.i2r, receive: keys.r2i, peerReceived: answer.received)
    }

    private func resumed(_ context: ChannelHandlerContext, send: [UInt8], receive: [UInt8], peerReceived: UInt64) {
        acknowledged(peerReceived)
        state = .established(send: TransportCipher(key: send), receive: TransportCipher(key: receive))
        deframer = FrameDeframer()
        // The peer learned our offset from the resumption messages.
        bytesAcked = bytesReceived
        resumptions += 1
        for buffer in retained { seal(context, buffer, promise: nil) }
        ackWaitSince = retained.isEmpty ? nil : uptime()
        releaseHeld(context)
        context.flush()
        context.fireUserInboundEventTriggered(SessionCarrierEvent.resumed)
    }
}
