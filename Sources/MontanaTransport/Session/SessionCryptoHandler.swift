import Foundation
import MontanaCrypto
import MontanaWire
import NIOCore

/// Noise_PQ XX over a carrier, then transport frames (PROTOCOL.md sections 4-5). Below it flow
/// carrier bytes; above it flows the plaintext session stream (what yamux reads and writes).
/// DATA records carry the stream; ACKs are sent every 64 KiB or 200 ms and checked against what
/// was sent. Any failure closes the carrier; a responder never answers garbage.
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

    private enum State {
        case initiator(NoiseInitiator, awaiting: Int)
        case responder(NoiseResponder, awaiting: Int)
        case established(send: TransportCipher, receive: TransportCipher)
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
        case .closed:
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
                    guard case .responder(_, _, let admit) = role, let keys = noise.keys else { return }
                    let admission: SessionAdmission
                    do {
                        admission = try admit(peer, noise.hashBeforePayload3)
                    } catch {
                        fail(context, .admissionRefused("\(error)"))
                        return
                    }
                    establish(context, keys: keys, peer: peer, admission: admission)
                case .initiator(var noise, _):
                    let peer = try noise.readMessage2(message)
                    guard case .initiator(_, _, let payload) = role else { return }
                    let msg3 = try noise.message3(payload: payload)
                    guard let keys = noise.keys else { return }
                    writeHandshake(context, msg3)
                    establish(context, keys: keys, peer: peer, admission: SessionAdmission())
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

    private func establish(_ context: ChannelHandlerContext, keys: NoiseSessionKeys, peer: NoisePeer, admission: SessionAdmission) {
        handshakeTimer?.cancel()
        state = .established(send: TransportCipher(key: keys.sendKey), receive: TransportCipher(key: keys.receiveKey))
        let event = SessionEstablished(peer: peer, sessionID: keys.sessionID, admission: admission)
        established = event
        context.fireUserInboundEventTriggered(event)
        let queued = pendingWrites
        pendingWrites = []
        for (buffer, promise) in queued { writeData(context, buffer, promise: promise) }
        if !queued.isEmpty { context.flush() }
    }

    private func processFrames(_ context: ChannelHandlerContext) {
        var delivered = false
        while case .established(let send, var receive) = state, let body = deframer.nextBody() {
            let plain: Data
            let record: TransportRecord
            do {
                plain = try receive.openData(body)
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
        var buffer = buffer
        if buffer.readableBytes == 0 {
            promise?.succeed()
            return
        }
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
            bytesSent += UInt64(n)
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
        switch state {
        case .established:
            writeData(context, buffer, promise: promise)
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
        }
        context.close(mode: mode, promise: promise)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if established == nil, case .closed = state {} else if established == nil {
            onFailure?(.handshake("carrier closed during the handshake"))
        }
        state = .closed
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
}
