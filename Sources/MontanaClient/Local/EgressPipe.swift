import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore

/// The client end of one egress stream, glued to one app connection: EgressOpen (with any
/// optimistic data) → EgressOpenAck → EgressData both ways with half-closes. Backpressure is
/// end to end: the app is read only while the stream is writable, and stream data is marked
/// consumed only after the app socket took it.
final class EgressPipe {
    static let openTimeout = TimeAmount.seconds(30)

    private let stream: MuxStream
    private let session: ExitSession
    private let app: any Channel
    private var decoder = LengthPrefixedDecoder()
    private var acked = false
    private var onAck: ((EgressOpenStatus) -> Void)?
    private var timer: Scheduled<Void>?
    private var appFinished = false
    private var exitFinished = false
    private(set) var appReadPaused = false
    /// The session ended before the exit answered the open: the exit (or the path) dropped the
    /// session itself, e.g. an exit that refused the account at EgressAuth.
    private(set) var sessionLostBeforeAck = false

    init(stream: MuxStream, session: ExitSession, app: any Channel) {
        self.stream = stream
        self.session = session
        self.app = app
    }

    /// Sends EgressOpen (+ optimistic data) and reports the exit's answer once. Throws, before
    /// anything is sent, when the destination cannot be encoded (the caller answers the app).
    func open(address: EgressAddress, port: UInt16, optimistic: [UInt8],
              onAck: @escaping (EgressOpenStatus) -> Void) throws(WireError) {
        let openMessage = try EgressMessage.open(EgressOpen(streamID: stream.id, transport: .tcp, address: address, port: port)).encode()
        self.onAck = onAck
        session.streamsOpened += 1
        session.activeStreams += 1
        if !stream.write(LengthPrefixedDecoder.frame(openMessage)) { appReadPaused = true }
        sendData(optimistic)
        stream.onData = { [self] buffer in receive(buffer) }
        stream.onEnd = { [self] end in
            switch end {
            case .remoteFinished: exitClosed()
            case .reset: abort()
            case .sessionClosed:
                if !acked { sessionLostBeforeAck = true }
                abort()
            }
        }
        stream.onWritable = { [self] in
            if appReadPaused {
                appReadPaused = false
                app.read()
            }
        }
        timer = app.eventLoop.assumeIsolated().scheduleTask(in: Self.openTimeout) { [self] in
            if !acked { answer(.unreachable) }
        }
        stream.startReading()
    }

    private func answer(_ status: EgressOpenStatus) {
        timer?.cancel()
        guard let onAck else { return }
        self.onAck = nil
        acked = true
        onAck(status)
        if status != .open { finish() }
    }

    /// For EgressClose, which always encodes; a message that did not would reset the stream.
    private func send(_ message: EgressMessage) {
        guard let bytes = try? message.encode() else {
            stream.reset()
            abort()
            return
        }
        if !stream.write(LengthPrefixedDecoder.frame(bytes)) { appReadPaused = true }
    }

    /// Optimistic bytes, split into EgressData messages of at most `EgressMessage.maxPayload`.
    private func sendData(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        var out = ByteBuffer()
        EgressFraming.appendData(streamID: stream.id, payload: ByteBuffer(bytes: bytes), to: &out)
        session.bytesUp += bytes.count
        if !stream.write(out) { appReadPaused = true }
    }

    /// App bytes → the exit. Returns whether the app may be read further now.
    func appRead(_ buffer: ByteBuffer) -> Bool {
        var out = ByteBuffer()
        out.reserveCapacity(buffer.readableBytes + 8 * (buffer.readableBytes / EgressMessage.maxPayload + 1))
        EgressFraming.appendData(streamID: stream.id, payload: buffer, to: &out)
        session.bytesUp += buffer.readableBytes
        if !stream.write(out) { appReadPaused = true }
        return !appReadPaused
    }

    func appEOF() {
        guard !appFinished else { return }
        appFinished = true
        send(.close(streamID: stream.id, reason: .normal))
        stream.closeWrite()
        finishIfDone()
    }

    func appClosed() {
        if !(appFinished && exitFinished) { stream.reset() }
        finish()
    }

    private func receive(_ buffer: ByteBuffer) {
        decoder.append(buffer)
        do {
            while let raw = try decoder.nextMessage() {
                let size = LengthPrefixedDecoder.wireSize(bodyLength: raw.readableBytes)
                if acked, let payload = EgressFraming.dataPayload(raw, streamID: stream.id) {
                    deliver(payload, wireSize: size)
                    continue
                }
                let message = try EgressMessage.decode(Array(raw.readableBytesView))
                if let id = message.streamID, id != stream.id { throw WireError.invalidField("stream_id") }
                switch message {
                case .openAck(_, let status) where !acked:
                    stream.consumed(size)
                    answer(status)
                case .data(_, let payload) where acked:
                    deliver(ByteBuffer(bytes: payload), wireSize: size)
                case .close:
                    stream.consumed(size)
                    exitClosed()
                case .keepalive:
                    stream.consumed(size)
                default:
                    throw WireError.invalidField("unexpected egress message")
                }
            }
        } catch {
            stream.reset()
            abort()
        }
    }

    /// Exit bytes → the app; the stream window reopens once the app's socket took them.
    private func deliver(_ payload: ByteBuffer, wireSize: Int) {
        session.bytesDown += payload.readableBytes
        app.writeAndFlush(payload).assumeIsolated().whenComplete { [weak self] _ in
            self?.stream.consumed(wireSize)
        }
    }

    private func exitClosed() {
        guard !exitFinished else { return }
        exitFinished = true
        if !acked {
            answer(.unreachable)
            return
        }
        app.close(mode: .output, promise: nil)
        finishIfDone()
    }

    private func abort() {
        if !acked {
            answer(.unreachable)
        } else {
            app.close(promise: nil)
            finish()
        }
    }

    private func finishIfDone() {
        if appFinished && exitFinished {
            app.close(promise: nil)
            finish()
        }
    }

    private var finished = false
    private func finish() {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        session.streamFinished()
        stream.onData = nil
        stream.onWritable = nil
        stream.onEnd = nil
    }
}
