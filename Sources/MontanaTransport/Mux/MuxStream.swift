import MontanaSession
import NIOCore

/// How a stream ended.
public enum MuxStreamEnd: Sendable, Equatable {
    /// The peer half-closed (FIN); we may still write.
    case remoteFinished
    /// Reset by the peer, by us, or because the session died.
    case reset
    /// The session under it closed.
    case sessionClosed
}

/// One yamux stream, bound to its session's event loop. Data flows in through `onData`; the
/// consumer calls `consumed(_:)` once it has passed bytes on, which reopens the peer's window —
/// that is the end-to-end backpressure. `write` returns false when the source should pause until
/// `onWritable`.
public final class MuxStream {
    public let id: UInt32
    public internal(set) var protocolName: String
    public var onData: ((ByteBuffer) -> Void)?
    public var onEnd: ((MuxStreamEnd) -> Void)?
    public var onWritable: (() -> Void)?
    /// Set for outbound streams: called once the peer accepted or refused the protocol.
    var onNegotiated: ((Bool) -> Void)?

    weak var mux: MuxHandler?
    var listener: MultistreamListener?
    var dialer: MultistreamDialer?
    var negotiated = false
    var bufferedBeforeHandler: [ByteBuffer] = []
    var ended = false
    var writeClosed = false
    /// Bytes accepted while yamux's per-stream queue was full; sent on the next `.writable`.
    /// A source that honours `write`'s return value keeps this to at most one read's worth.
    var overflow: [ByteBuffer] = []
    var overflowBytes = 0
    /// The most a stream holds beyond yamux's own backlog: 1 MiB. A source that honours `write`
    /// keeps it to one read's worth (≤ 64 KiB); past the bound the stream is reset.
    public static let maxOverflowBytes = 1024 * 1024
    /// closeWrite() was called while `overflow` still held data: FIN follows the overflow.
    var closeAfterOverflow = false

    init(id: UInt32, protocolName: String, mux: MuxHandler) {
        self.id = id
        self.protocolName = protocolName
        self.mux = mux
    }

    public var eventLoop: (any EventLoop)? { mux?.eventLoop }

    public var isWritable: Bool { !ended && !writeClosed && (mux?.isWritable(self) ?? false) }

    /// Queues bytes on the stream. Returns false when the caller should stop its source until
    /// `onWritable` fires.
    @discardableResult
    public func write(_ buffer: ByteBuffer) -> Bool {
        guard !ended, !writeClosed, let mux else { return false }
        return mux.write(buffer, on: self)
    }

    /// Half-close: no more writes; the peer sees FIN after the queued data.
    public func closeWrite() {
        guard !ended, !writeClosed else { return }
        writeClosed = true
        mux?.closeWrite(self)
    }

    public func reset() {
        guard !ended else { return }
        mux?.reset(self)
    }

    /// Reports that `count` received bytes were delivered onward.
    public func consumed(_ count: Int) {
        guard !ended, count > 0 else { return }
        mux?.consumed(count, on: self)
    }

    func deliver(_ buffer: ByteBuffer) {
        if let onData {
            onData(buffer)
        } else {
            bufferedBeforeHandler.append(buffer)
        }
    }

    /// Hands over data that arrived before a consumer attached.
    public func startReading() {
        let pending = bufferedBeforeHandler
        bufferedBeforeHandler = []
        for b in pending { onData?(b) }
    }

    /// Called once, when the stream is gone for good (budgets it was counted against).
    var onFinished: (() -> Void)?

    /// Gives back, now, the node-wide control-stream slot this stream holds (if any). For a
    /// service that parks the stream in a table with its own bound (a directory long poll),
    /// so parked streams do not starve pings and echoes of the node's 128 control streams.
    public func releaseStreamBudget() {
        let finished = onFinished
        onFinished = nil
        finished?()
    }

    func end(_ how: MuxStreamEnd) {
        if how != .remoteFinished {
            ended = true
            let finished = onFinished
            onFinished = nil
            finished?()
        }
        let callback = onEnd
        if ended {
            onData = nil
            onWritable = nil
            onEnd = nil
        }
        callback?(how)
    }
}
