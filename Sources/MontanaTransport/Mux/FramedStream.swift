import MontanaSession
import NIOCore

/// `uvarint len ‖ message` messages over one yamux stream, both ways, on the stream's loop.
/// Sending honours the stream's writability: queued messages go out as the peer's window
/// allows, so a long answer (a whole directory) never sits in yamux's backlog or the stream's
/// overflow. Receiving is bounded by `maxMessageSize` (a larger length resets the stream) and
/// by what the owner does per message.
public final class FramedStream {
    public let stream: MuxStream
    private var decoder: LengthPrefixedDecoder
    private var outbox: [ByteBuffer] = []
    private var outboxHead = 0
    private var finishAfterSending = false
    private var ended = false
    /// Bytes queued and not yet handed to the stream.
    public private(set) var queuedBytes = 0
    /// Called for every complete inbound message.
    public var onMessage: (([UInt8]) -> Void)?
    /// Called once: the peer finished (`.remoteFinished`), or the stream is gone.
    public var onEnd: ((MuxStreamEnd) -> Void)?
    /// Called when every queued message has been handed to the stream.
    public var onDrained: (() -> Void)?

    public init(stream: MuxStream, maxMessageSize: Int) {
        self.stream = stream
        decoder = LengthPrefixedDecoder(maxMessageSize: maxMessageSize)
        stream.onData = { [weak self] buffer in self?.receive(buffer) }
        stream.onWritable = { [weak self] in self?.pump() }
        stream.onEnd = { [weak self] end in
            guard let self else { return }
            if end != .remoteFinished { self.ended = true }
            self.onEnd?(end)
        }
    }

    /// Starts delivering (also what arrived before the owner attached).
    public func start() { stream.startReading() }

    public func send(_ message: [UInt8]) {
        guard !ended, !finishAfterSending else { return }
        let framed = LengthPrefixedDecoder.frame(message)
        queuedBytes += framed.readableBytes
        outbox.append(framed)
        pump()
    }

    /// FIN once everything queued went out.
    public func finish() {
        finishAfterSending = true
        pump()
    }

    public func reset() {
        ended = true
        outbox = []
        stream.reset()
    }

    private func pump() {
        while outboxHead < outbox.count, stream.isWritable {
            let next = outbox[outboxHead]
            outboxHead += 1
            queuedBytes -= next.readableBytes
            stream.write(next)
        }
        if outboxHead == outbox.count {
            outbox = []
            outboxHead = 0
            if finishAfterSending && !ended { stream.closeWrite() }
            onDrained?()
        } else if outboxHead > 64 {
            outbox.removeFirst(outboxHead)
            outboxHead = 0
        }
    }

    private func receive(_ buffer: ByteBuffer) {
        decoder.append(buffer)
        stream.consumed(buffer.readableBytes)
        do {
            while !ended, var message = try decoder.nextMessage() {
                let bytes = message.readBytes(length: message.readableBytes) ?? []
                onMessage?(bytes)
            }
        } catch {
            reset()
            onEnd?(.reset)
        }
    }
}
