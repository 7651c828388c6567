import NIOCore

/// A sans-I/O yamux session (hashicorp spec, PROTOCOL.md section 6).
///
/// Drive it with bytes from the session transport (`receive`) and calls from the application
/// (`openStream`, `write`, `consumed`, `close`, `reset`, `ping`, `goAway`); after every call, drain
/// `takeOutbound()` into the session transport. Time is a monotonic nanosecond count supplied by the
/// caller (e.g. `NIODeadline.now().uptimeNanoseconds`), so tests control it.
///
/// Flow control: received data is reported at once and never buffered here; the peer's credit is
/// restored only when the application calls `consumed`, so a slow consumer stalls the sender.
/// Outbound data beyond the peer's window waits in the stream's backlog; when `write` returns false
/// the caller stops reading its source until a `.writable` event.
public struct YamuxConnection: Sendable {
    public let role: YamuxRole
    public private(set) var configuration: YamuxConfiguration

    private var streams: [UInt32: YamuxStream] = [:]
    private var inboundStreamCount = 0
    /// Streams forgotten since the last `takeRemovedStreams()` (the owner drops its per-stream
    /// state for them without scanning every stream). Drained after every receive or write batch,
    /// so it holds at most the streams one batch of frames closed.
    private var removed: [UInt32] = []
    /// Nil once the id space is used up.
    private var nextStreamID: UInt32?
    private var highestPeerStreamID: UInt32 = 0

    private var outbound = ByteBuffer()
    /// A header split across `receive` calls (at most 11 bytes).
    private var partialHeader = ByteBuffer()
    /// The data frame whose body is arriving; `deliver` is false for streams we do not know.
    private var currentBody: (streamID: UInt32, flags: YamuxFlags, remaining: Int, deliver: Bool)?

    private var failed = false
    private var localGoAway = false
    private var remoteGoAway = false

    /// Outbound bytes waiting for windows, all streams together (bounded by
    /// `maxPendingOutboundBytesPerSession`).
    private var totalPendingBytes = 0
    /// Receive-window growth beyond the initial windows, all streams together.
    private var windowGrowth: UInt64 = 0
    /// A write was refused because of the session-wide bound; streams owe `.writable` events.
    private var sessionBacklogWasFull = false
    private var pingTokens: TokenBucket
    private var refusedStreamTokens: TokenBucket

    private var outstandingPing: (opaque: UInt32, sentAt: UInt64)?
    private var nextPingOpaque: UInt32 = 1
    private var measuredRTT: UInt64?

    public init(role: YamuxRole, configuration: YamuxConfiguration = YamuxConfiguration()) {
        self.role = role
        self.configuration = configuration
        self.nextStreamID = role.firstStreamID
        // The clock starts at the first use (the caller's `now` is not known here): both start full.
        pingTokens = TokenBucket(burst: Int(clamping: configuration.pingBurst), now: 0)
        refusedStreamTokens = TokenBucket(burst: Int(clamping: configuration.refusedStreamBurst), now: 0)
    }

    /// Lowers (or raises) how many peer-opened streams may be open at once, e.g. once a session
    /// turns out to be a control session that needs only a few. Streams already open stay.
    public mutating func limitInboundStreams(to count: Int) {
        configuration.maxInboundStreams = max(0, count)
    }

    /// Lowers the outbound backlog bounds (per stream, per session), e.g. for a control session
    /// whose answers are small. Bytes already queued stay queued.
    public mutating func limitPendingOutbound(perStream: Int, perSession: Int) {
        configuration.maxPendingOutboundBytesPerStream = max(1, perStream)
        configuration.maxPendingOutboundBytesPerSession = max(1, perSession)
    }

    // MARK: Observability

    /// Streams currently open (in either direction).
    public var openStreamCount: Int { streams.count }
    /// Bytes waiting in `takeOutbound()`; a caller whose transport is blocked should stop writing.
    public var outboundByteCount: Int { outbound.readableBytes }
    /// True after a protocol violation; every later call throws `.connectionFailed`.
    public var isFailed: Bool { failed }
    /// The latest ping round-trip time, if any.
    public var roundTripTime: UInt64? { measuredRTT }

    /// Outbound bytes waiting for the peers' windows, all streams together.
    public var pendingOutboundBytes: Int { totalPendingBytes }
    /// Receive-window growth beyond the initial windows, all streams together.
    public var receiveWindowGrowth: UInt64 { windowGrowth }

    /// Outbound bytes of `id` waiting for the peer's window (0 for an unknown stream).
    public func pendingOutboundBytes(on id: YamuxStreamID) -> Int { streams[id.rawValue]?.pendingBytes ?? 0 }
    /// Whether `write` to `id` is currently accepted.
    /// Whether the stream is still known (not reset, not closed in both directions).
    public func isOpen(_ id: YamuxStreamID) -> Bool { streams[id.rawValue] != nil }

    public func isWritable(_ id: YamuxStreamID) -> Bool {
        guard let stream = streams[id.rawValue] else { return false }
        return !stream.closeRequested && stream.pendingBytes < configuration.maxPendingOutboundBytesPerStream
            && totalPendingBytes < configuration.maxPendingOutboundBytesPerSession
    }
    /// The receive window of `id` (grows with auto-tuning), or nil for an unknown stream.
    public func receiveWindowSize(of id: YamuxStreamID) -> UInt32? { streams[id.rawValue]?.receiveWindowSize }
    /// How many more bytes the peer currently lets us send on `id`, or nil for an unknown stream.
    public func sendWindow(of id: YamuxStreamID) -> UInt32? { streams[id.rawValue]?.sendWindow }

    // MARK: Outbound bytes

    /// The bytes to send on the session transport since the last call, or nil when there are none.
    public mutating func takeOutbound() -> ByteBuffer? {
        guard outbound.readableBytes > 0 else { return nil }
        defer { outbound = ByteBuffer() }
        return outbound
    }

    /// The streams forgotten (reset, or closed in both directions) since the last call.
    public mutating func takeRemovedStreams() -> [UInt32] {
        guard !removed.isEmpty else { return [] }
        defer { removed = [] }
        return removed
    }

    // MARK: Application calls

    /// Opens a stream (SYN on a window update with delta 0, so the peer learns of it at once).
    public mutating func openStream() throws(YamuxError) -> YamuxStreamID {
        guard !failed else { throw .connectionFailed }
        guard !remoteGoAway else { throw .goingAway }
        guard let id = nextStreamID else { throw .streamIDsExhausted }
        nextStreamID = id <= UInt32.max - 2 ? id + 2 : nil
        streams[id] = YamuxStream(id: id, openedByPeer: false)
        writeFrame(.windowUpdate, [.syn], id, 0)
        return YamuxStreamID(id)
    }

    /// Queues `data` on stream `id`; it is framed at once as far as the peer's window allows, the rest
    /// waits. Returns whether the stream is still writable: false means stop reading the source until
    /// `.writable(id)`. Throws `.streamNotWritable` when called on a stream that is not writable.
    @discardableResult
    public mutating func write(_ data: ByteBuffer, to id: YamuxStreamID) throws(YamuxError) -> Bool {
        guard !failed else { throw .connectionFailed }
        guard var stream = streams[id.rawValue] else { throw .unknownStream(id) }
        guard !stream.closeRequested else { throw .streamClosedForWriting(id) }
        let limit = configuration.maxPendingOutboundBytesPerStream
        guard stream.pendingBytes < limit, totalPendingBytes < configuration.maxPendingOutboundBytesPerSession else {
            if totalPendingBytes >= configuration.maxPendingOutboundBytesPerSession { sessionBacklogWasFull = true }
            stream.owesWritableEvent = true
            streams[id.rawValue] = stream
            throw .streamNotWritable(id)
        }
        if data.readableBytes > 0 {
            stream.pending.append(data)
            stream.pendingBytes += data.readableBytes
            totalPendingBytes += data.readableBytes
        }
        sendPending(&stream)
        let writable = stream.pendingBytes < limit && totalPendingBytes < configuration.maxPendingOutboundBytesPerSession
        if !writable { stream.owesWritableEvent = true }
        if totalPendingBytes >= configuration.maxPendingOutboundBytesPerSession { sessionBacklogWasFull = true }
        store(stream)
        return writable
    }

    /// Half-closes stream `id`: FIN goes out after the data already written. Unknown ids are ignored
    /// (the stream may have been reset meanwhile).
    public mutating func close(_ id: YamuxStreamID) {
        guard !failed, var stream = streams[id.rawValue], !stream.closeRequested else { return }
        stream.closeRequested = true
        sendPending(&stream)
        store(stream)
    }

    /// Resets stream `id` (RST), dropping its backlog. Unknown ids are ignored.
    public mutating func reset(_ id: YamuxStreamID) {
        guard !failed, streams[id.rawValue] != nil else { return }
        writeFrame(.windowUpdate, [.rst], id.rawValue, 0)
        removeStream(id.rawValue)
    }

    /// Tells the connection the application passed `bytes` of stream `id` onward. Once half the
    /// window is consumed it sends a window update, doubling the window first (up to
    /// `maxReceiveWindowSize`) when the last half window was consumed within
    /// `autoTuneRTTMultiple` round trips. Unknown ids are ignored (the stream may be gone).
    public mutating func consumed(_ bytes: Int, on id: YamuxStreamID, now: UInt64) {
        guard !failed, bytes > 0, var stream = streams[id.rawValue] else { return }
        stream.unconsumed -= min(bytes, stream.unconsumed)
        defer { store(stream) }
        // After the peer's FIN it sends nothing more, so credit would be wasted.
        guard !stream.finReceived else { return }

        var window = UInt64(stream.receiveWindowSize)
        let returnable = window - UInt64(stream.receiveCredit) - UInt64(stream.unconsumed)
        guard returnable >= window / 2 else { return }

        let rtt = measuredRTT ?? configuration.assumedRTTNanoseconds
        let (threshold, overflow) = rtt.multipliedReportingOverflow(by: configuration.autoTuneRTTMultiple)
        if let start = stream.epochStart, now >= start, overflow || now - start < threshold {
            let grown = min(window * 2, UInt64(max(configuration.maxReceiveWindowSize, stream.receiveWindowSize)))
            // Growth comes out of the session's and the node's budgets; without room the window
            // simply stays as it is (the stream is then window-limited, never unbounded).
            let increase = grown - window
            if increase > 0, windowGrowth + increase <= configuration.maxReceiveWindowGrowthPerSession,
               configuration.sharedWindowBudget?.reserve(increase) ?? true {
                windowGrowth += increase
                window = grown
                stream.receiveWindowSize = UInt32(window)
            }
        }
        stream.epochStart = now

        let delta = UInt32(window - UInt64(stream.receiveCredit) - UInt64(stream.unconsumed))
        stream.receiveCredit += delta
        writeFrame(.windowUpdate, [], id.rawValue, delta)
    }

    /// Sends a ping; its answer produces `.pingRTT` and feeds auto-tuning. A newer ping replaces an
    /// unanswered one.
    public mutating func ping(now: UInt64) {
        guard !failed else { return }
        let opaque = nextPingOpaque
        nextPingOpaque &+= 1
        outstandingPing = (opaque, now)
        writeFrame(.ping, [.syn], 0, opaque)
    }

    /// Announces that this side accepts no more streams; later SYNs from the peer are reset.
    public mutating func goAway(_ code: YamuxGoAwayCode = .normal) {
        guard !failed, !localGoAway else { return }
        localGoAway = true
        writeFrame(.goAway, [], 0, code.rawValue)
    }

    // MARK: Inbound bytes

    /// Consumes session bytes (any split) and returns what happened, in order. On a protocol
    /// violation it queues GoAway(protocol error), drops every stream and throws; the caller flushes
    /// `takeOutbound()` and closes the session. Events of the failing call are lost with the streams.
    public mutating func receive(_ bytes: ByteBuffer, now: UInt64) throws(YamuxError) -> [YamuxEvent] {
        guard !failed else { throw .connectionFailed }
        var input = bytes
        var events: [YamuxEvent] = []
        do throws(YamuxError) {
            while let header = try nextStep(&input, &events) {
                try handle(header, now: now, events: &events)
            }
            if sessionBacklogWasFull {
                sessionBacklogWasFull = totalPendingBytes >= configuration.maxPendingOutboundBytesPerSession
                if !sessionBacklogWasFull { announceSessionWritable(&events) }
            }
        } catch {
            fail()
            throw error
        }
        return events
    }

    /// Delivers body bytes of the current data frame, or returns the next complete header;
    /// nil means all input is used up.
    private mutating func nextStep(_ input: inout ByteBuffer, _ events: inout [YamuxEvent]) throws(YamuxError) -> YamuxFrameHeader? {
        while var body = currentBody {
            if body.remaining > 0 {
                let count = min(body.remaining, input.readableBytes)
                guard count > 0, let chunk = input.readSlice(length: count) else { return nil }
                body.remaining -= count
                currentBody = body
                if body.deliver { events.append(.data(YamuxStreamID(body.streamID), chunk)) }
                if body.remaining > 0 { return nil }
            }
            currentBody = nil
            if body.deliver { applyEndFlags(body.flags, body.streamID, &events) }
        }
        if partialHeader.readableBytes == 0, input.readableBytes >= YamuxFrameHeader.size {
            return try YamuxFrameHeader.decode(from: &input)
        }
        let missing = YamuxFrameHeader.size - partialHeader.readableBytes
        guard var piece = input.readSlice(length: min(missing, input.readableBytes)) else { return nil }
        partialHeader.writeBuffer(&piece)
        guard partialHeader.readableBytes == YamuxFrameHeader.size else { return nil }
        defer { partialHeader.clear() }
        return try YamuxFrameHeader.decode(from: &partialHeader)
    }

    private mutating func handle(_ header: YamuxFrameHeader, now: UInt64, events: inout [YamuxEvent]) throws(YamuxError) {
        switch header.type {
        case .ping:
            // Stream id is meant to be 0; like the Go implementations we do not insist.
            if header.flags.contains(.syn) {
                guard pingTokens.take(rate: Int(clamping: configuration.pingsPerSecond), burst: Int(clamping: configuration.pingBurst), now: now)
                else { throw .pingFlood }
                writeFrame(.ping, [.ack], 0, header.length)
            } else if header.flags.contains(.ack), let ping = outstandingPing, ping.opaque == header.length {
                outstandingPing = nil
                let rtt = now >= ping.sentAt ? now - ping.sentAt : 0
                measuredRTT = rtt
                events.append(.pingRTT(nanoseconds: rtt))
            }
        case .goAway:
            remoteGoAway = true
            events.append(.goAway(YamuxGoAwayCode(rawValue: header.length)))
        case .windowUpdate, .data:
            try handleStreamFrame(header, now: now, events: &events)
        }
    }

    private mutating func handleStreamFrame(_ header: YamuxFrameHeader, now: UInt64, events: inout [YamuxEvent]) throws(YamuxError) {
        let id = header.streamID
        guard id != 0 else { throw .streamFrameOnSessionID(header.type) }
        if header.flags.contains(.syn) { try acceptPeerStream(id, now: now, &events) }

        guard var stream = streams[id] else {
            // A stream we reset, refused or already finished: skip whatever is still in flight.
            if header.type == .data { currentBody = (id, header.flags, Int(header.length), false) }
            return
        }
        if header.type == .windowUpdate {
            let grown = UInt64(stream.sendWindow) + UInt64(header.length)
            guard grown <= UInt64(UInt32.max) else { throw .windowOverflow(stream: id) }
            stream.sendWindow = UInt32(grown)
            sendPending(&stream)
            if stream.owesWritableEvent, stream.pendingBytes < configuration.maxPendingOutboundBytesPerStream {
                stream.owesWritableEvent = false
                events.append(.writable(YamuxStreamID(id)))
            }
            store(stream)
            applyEndFlags(header.flags, id, &events)
        } else {
            guard !stream.finReceived else { throw .dataAfterFIN(stream: id) }
            guard header.length <= stream.receiveCredit else {
                throw .windowExceeded(stream: id, length: header.length, window: stream.receiveCredit)
            }
            stream.receiveCredit -= header.length
            stream.unconsumed += Int(header.length)
            if stream.epochStart == nil { stream.epochStart = now }
            streams[id] = stream
            currentBody = (id, header.flags, Int(header.length), true)
        }
    }

    private mutating func acceptPeerStream(_ id: UInt32, now: UInt64, _ events: inout [YamuxEvent]) throws(YamuxError) {
        guard !role.opens(id) else { throw .wrongStreamIDParity(id) }
        guard streams[id] == nil else { throw .duplicateStream(id) }
        guard id > highestPeerStreamID else { throw .streamIDNotIncreasing(id) }
        highestPeerStreamID = id
        guard !localGoAway, inboundStreamCount < configuration.maxInboundStreams else {
            guard refusedStreamTokens.take(rate: Int(clamping: configuration.refusedStreamsPerSecond),
                                           burst: Int(clamping: configuration.refusedStreamBurst), now: now)
            else { throw .refusedStreamFlood }
            writeFrame(.windowUpdate, [.rst], id, 0)
            return
        }
        streams[id] = YamuxStream(id: id, openedByPeer: true)
        inboundStreamCount += 1
        writeFrame(.windowUpdate, [.ack], id, 0)
        events.append(.streamOpened(YamuxStreamID(id)))
    }

    /// FIN and RST take effect after the frame's data has been delivered.
    private mutating func applyEndFlags(_ flags: YamuxFlags, _ id: UInt32, _ events: inout [YamuxEvent]) {
        guard var stream = streams[id] else { return }
        if flags.contains(.rst) {
            removeStream(id)
            events.append(.reset(YamuxStreamID(id)))
        } else if flags.contains(.fin), !stream.finReceived {
            stream.finReceived = true
            events.append(.remoteClosed(YamuxStreamID(id)))
            store(stream)
        }
    }

    // MARK: Helpers

    /// Frames as much of the backlog as the peer's window allows; the FIN rides on the last frame.
    private mutating func sendPending(_ stream: inout YamuxStream) {
        while stream.sendWindow > 0, var chunk = stream.pending.first {
            let count = min(chunk.readableBytes, Int(stream.sendWindow), configuration.maxDataFrameSize)
            guard let slice = chunk.readSlice(length: count) else { break }
            if chunk.readableBytes > 0 {
                stream.pending[stream.pending.startIndex] = chunk
            } else {
                stream.pending.removeFirst()
            }
            stream.pendingBytes -= count
            totalPendingBytes -= count
            stream.sendWindow -= UInt32(count)
            let carriesFIN = stream.closeRequested && stream.pending.isEmpty
            writeFrame(.data, carriesFIN ? [.fin] : [], stream.id, UInt32(count))
            outbound.writeImmutableBuffer(slice)
            if carriesFIN { stream.finSent = true }
        }
        if stream.closeRequested, !stream.finSent, stream.pending.isEmpty {
            writeFrame(.windowUpdate, [.fin], stream.id, 0)
            stream.finSent = true
        }
    }

    /// Writes back a stream's state, forgetting it once both halves are closed.
    private mutating func store(_ stream: YamuxStream) {
        if stream.isFinished {
            removeStream(stream.id)
        } else {
            streams[stream.id] = stream
        }
    }

    private mutating func removeStream(_ id: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        removed.append(id)
        if stream.openedByPeer { inboundStreamCount -= 1 }
        totalPendingBytes -= stream.pendingBytes
        releaseGrowth(of: stream)
    }

    private mutating func releaseGrowth(of stream: YamuxStream) {
        let growth = UInt64(stream.receiveWindowSize) - UInt64(YamuxConfiguration.initialWindowSize)
        guard growth > 0 else { return }
        windowGrowth -= min(growth, windowGrowth)
        configuration.sharedWindowBudget?.release(growth)
    }

    /// Streams that were refused writes only because the session-wide backlog was full get their
    /// `.writable` once it has drained below the bound.
    private mutating func announceSessionWritable(_ events: inout [YamuxEvent]) {
        guard totalPendingBytes < configuration.maxPendingOutboundBytesPerSession else { return }
        for (id, stream) in streams where stream.owesWritableEvent
            && stream.pendingBytes < configuration.maxPendingOutboundBytesPerStream && !stream.closeRequested {
            streams[id]?.owesWritableEvent = false
            events.append(.writable(YamuxStreamID(id)))
        }
    }

    private mutating func writeFrame(_ type: YamuxFrameType, _ flags: YamuxFlags, _ id: UInt32, _ length: UInt32) {
        YamuxFrameHeader(type: type, flags: flags, streamID: id, length: length).encode(into: &outbound)
    }

    private mutating func fail() {
        failed = true
        for stream in streams.values { releaseGrowth(of: stream) }
        streams.removeAll()
        totalPendingBytes = 0
        inboundStreamCount = 0
        currentBody = nil
        partialHeader.clear()
        writeFrame(.goAway, [], 0, YamuxGoAwayCode.protocolError.rawValue)
    }
}
