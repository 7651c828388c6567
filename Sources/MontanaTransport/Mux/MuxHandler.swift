import Foundation
import Metrics
import MontanaSession
import NIOConcurrencyHelpers
import NIOCore

/// Why a stream was reset, counted per process (metric `montana_mux_stream_resets_total{reason}`):
/// an app connection that ends early says here which side gave up on it and why.
public enum MuxStreamReset: String, Sendable, CaseIterable {
    /// A writer pushed its stream's overflow past `MuxStream.maxOverflowBytes` (1 MiB).
    case overflow
    /// An inbound stream beyond the node's control-stream budget.
    case streamBudget = "stream_budget"
    /// The other side offered, or answered, a protocol this side does not serve.
    case protocolRefused = "protocol_refused"
    /// The protocol negotiation on the stream was malformed.
    case negotiationFailed = "negotiation_failed"
    /// The service using the stream reset it (an egress refusal, an idle timeout, a closed app).
    case application
    /// The peer reset it.
    case peer

    private static let counts = NIOLockedValueBox([String: Int]())

    func count() {
        Self.counts.withLockedValue { $0[rawValue, default: 0] += 1 }
        Counter(label: "montana_mux_stream_resets_total", dimensions: [("reason", rawValue)]).increment()
    }

    /// Resets counted in this process for `reason` (status and tests).
    public static func total(_ reason: MuxStreamReset) -> Int { counts.withLockedValue { $0[reason.rawValue] ?? 0 } }
}

/// A service that serves one protocol on inbound streams.
public protocol StreamService {
    var protocolName: String { get }
    /// Called on the event loop once the stream negotiated this protocol; data that was
    /// pipelined behind the protocol line is already queued on the stream.
    func serve(_ stream: MuxStream, session: MuxHandler)
}

/// Yamux over the plaintext session stream (above `SessionCryptoHandler`), with
/// multistream-select per stream. Inbound streams are dispatched to `StreamService`s by
/// protocol; outbound streams are opened with `openStream(protocol:)`.
public final class MuxHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var yamux: YamuxConnection
    private var streams: [UInt32: MuxStream] = [:]
    private var services: [String: any StreamService]
    private var context: ChannelHandlerContext?
    private var established = false
    private var pingTimer: Scheduled<Void>?
    private var lastHeard: UInt64 = 0
    public private(set) var establishedEvent: SessionEstablished?
    /// Called once the session is established (or fails with nil) on the event loop.
    public var onEstablished: ((SessionEstablished?) -> Void)?
    public var onClosed: (() -> Void)?
    public var eventLoop: (any EventLoop)? { context?.eventLoop }
    public var streamCount: Int { streams.count }
    /// Free-form per-session state for services (e.g. the admitted account's stream counter).
    public var userInfo: [String: Any] = [:]

    /// Bytes handed to the carrier and not yet written to the socket. Above `maxUnsentBytes` the
    /// session stops reading its carrier until they drain below half of it, so a peer that sends
    /// and never reads cannot grow our send buffer with answers (yamux ping ACKs, SYN ACKs, RSTs).
    private var unsentBytes = 0
    /// A read was held back while `unsentBytes` was above the bound.
    private var readPending = false
    /// 8 MiB: above what legitimate traffic queues (stream writers stop at the carrier's 64 KiB
    /// watermark; window updates release at most the 4 MiB session backlog), so only a peer that
    /// makes us answer without reading is paused — and a pause on both ends cannot happen in
    /// normal duplex traffic.
    public static let maxUnsentBytes = 8 * 1024 * 1024
    private let unsentLimit: Int

    /// Streams a session without egress (ping, ip-echo, directory) may hold open at once.
    public static let controlSessionStreams = ControlSessionLimits.streamsPerSession
    /// Counts this session's streams against a node-wide budget (control sessions), if set.
    private var streamBudget: SharedBudget?

    /// How often a session pings and how long a silence closes it.
    public struct Keepalive: Sendable {
        public var interval: TimeAmount
        public var silence: TimeAmount
        /// Nodes: a ping every 30 s, closed after 95 s of silence (three missed pings).
        public static let standard = Keepalive(interval: .seconds(30), silence: .seconds(95))
        /// A client's egress sessions: a ping every 2 s, closed after 7 s of silence, so a carrier
        /// a censor black-holes is given up in seconds (a yamux ping is 12 bytes each way).
        public static let client = Keepalive(interval: .seconds(2), silence: .seconds(7))
    }
    private let keepalive: Keepalive
    /// The session was closed because nothing was heard for `keepalive.silence` (the carrier
    /// went silent), not by either side.
    public private(set) var closedForSilence = false

    public init(role: YamuxRole, services: [any StreamService] = [], windowBudget: (any YamuxWindowBudget)? = nil,
                maxUnsentBytes: Int = MuxHandler.maxUnsentBytes, keepalive: Keepalive = .standard) {
        self.keepalive = keepalive
        unsentLimit = maxUnsentBytes
        var configuration = YamuxConfiguration()
        configuration.sharedWindowBudget = windowBudget
        configuration.maxPendingOutboundBytesPerSession = 4 * 1024 * 1024
        configuration.maxDataFrameSize = 64 * 1024
        // Above the egress limit (256 per session), so the 257th egress stream gets the
        // protocol's status 3 instead of a bare yamux reset.
        configuration.maxInboundStreams = 512
        yamux = YamuxConnection(role: role, configuration: configuration)
        self.services = Dictionary(services.map { ($0.protocolName, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Installs the services inbound streams may ask for; `maxInboundStreams` lowers how many
    /// peer streams may be open at once (e.g. `controlSessionStreams` for a session without egress).
    public func setServices(_ list: [any StreamService], maxInboundStreams: Int? = nil) {
        services = Dictionary(list.map { ($0.protocolName, $0) }, uniquingKeysWith: { a, _ in a })
        if let maxInboundStreams { yamux.limitInboundStreams(to: maxInboundStreams) }
    }

    /// Installs the services of a control session (no egress) with its tighter bounds: few
    /// streams, small backlogs, and every stream counted against the node-wide `streamBudget`
    /// (a stream the budget cannot cover is reset at once).
    public func setControlServices(_ list: [any StreamService], streamBudget: SharedBudget) {
        setServices(list, maxInboundStreams: ControlSessionLimits.streamsPerSession)
        yamux.limitPendingOutbound(perStream: ControlSessionLimits.backlogPerStream, perSession: ControlSessionLimits.backlogPerSession)
        self.streamBudget = streamBudget
    }

    /// Session-level figures for tests and status: bytes waiting in yamux for windows, in stream
    /// overflows, and the receive-window growth drawn from the budgets.
    public var heldOutboundBytes: Int {
        yamux.pendingOutboundBytes + streams.values.reduce(0) { $0 + $1.overflowBytes }
    }
    public var receiveWindowGrowth: UInt64 { yamux.receiveWindowGrowth }

    /// The event loop's clock (virtual in tests with an embedded loop).
    private func now() -> UInt64 { (context?.eventLoop.now ?? .now()).uptimeNanoseconds }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastHeard = now()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        pingTimer?.cancel()
        self.context = nil
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? SessionEstablished {
            established = true
            establishedEvent = e
            onEstablished?(e)
            onEstablished = nil
            flushOutbound()
            schedulePing(context, after: .seconds(1))
        }
        if let e = event as? SessionCarrierEvent, case .resumed = e {
            lastHeard = now()
            flushOutbound()
        }
        context.fireUserInboundEventTriggered(event)
    }

    // A session that has heard nothing for `keepalive.silence` is dead: it is closed, so a
    // vanished peer does not hold streams and memory forever.

    /// Keepalive and RTT measurement (the RTT feeds yamux window auto-tuning).
    private func schedulePing(_ context: ChannelHandlerContext, after delay: TimeAmount) {
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, let context = self.context else { return }
            let now = self.now()
            let session = context.channel as? SessionChannel
            if let session, !session.isAttached {
                // Waiting for a resumption: nothing to ping, nothing to hear.
                self.lastHeard = now
                self.schedulePing(context, after: self.keepalive.interval)
                return
            }
            if now > self.lastHeard, now - self.lastHeard > UInt64(max(0, self.keepalive.silence.nanoseconds)) {
                // A resumable session gives the silent carrier up and waits for another one.
                let seconds = (now - self.lastHeard) / 1_000_000_000
                if let session, session.dropCarrier(reason: "nothing heard for \(seconds) s", since: self.lastHeard) {
                    self.lastHeard = now
                    self.schedulePing(context, after: self.keepalive.interval)
                    return
                }
                self.closedForSilence = true
                context.close(promise: nil)
                return
            }
            self.yamux.ping(now: self.now())
            self.flushOutbound()
            self.schedulePing(context, after: self.keepalive.interval)
        }
    }

    public func read(context: ChannelHandlerContext) {
        if unsentBytes >= unsentLimit {
            readPending = true
            return
        }
        context.read()
    }

    /// Bytes handed to the carrier and not yet on the socket (for tests and status).
    public var unsentCarrierBytes: Int { unsentBytes }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastHeard = self.now()
        let buffer = unwrapInboundIn(data)
        let events: [YamuxEvent]
        do {
            events = try yamux.receive(buffer, now: self.now())
        } catch {
            flushOutbound()
            context.close(promise: nil)
            return
        }
        for event in events { handle(event) }
        flushOutbound()
    }

    private func handle(_ event: YamuxEvent) {
        switch event {
        case .streamOpened(let id):
            let stream = MuxStream(id: id.rawValue, protocolName: "", mux: self)
            stream.listener = MultistreamListener(supportedProtocols: Set(services.keys))
            streams[id.rawValue] = stream
            if let streamBudget {
                guard streamBudget.reserve(1) else {
                    reset(stream, reason: .streamBudget)
                    return
                }
                stream.onFinished = { streamBudget.release(1) }
            }
        case .data(let id, let buffer):
            guard let stream = streams[id.rawValue] else { return }
            receive(buffer, on: stream)
        case .remoteClosed(let id):
            streams[id.rawValue]?.end(.remoteFinished)
        case .reset(let id):
            if let stream = streams.removeValue(forKey: id.rawValue) {
                MuxStreamReset.peer.count()
                stream.end(.reset)
            }
        case .writable(let id):
            guard let stream = streams[id.rawValue] else { return }
            // Only when the session can take it too: while its channel is unwritable (the kept
            // copy is full, the carrier's buffer is full) a writer woken here would read its
            // source into frames that can only wait in memory. channelWritabilityChanged wakes
            // every writable stream once the channel is writable again.
            if drainOverflow(stream), isWritable(stream) { stream.onWritable?() }
        case .goAway:
            break
        case .pingRTT:
            break
        }
    }

    private func receive(_ buffer: ByteBuffer, on stream: MuxStream) {
        if stream.negotiated {
            stream.deliver(buffer)
            return
        }
        let size = buffer.readableBytes
        if var listener = stream.listener {
            do {
                let step = try listener.receive(buffer)
                stream.listener = listener
                if let response = step.response { _ = yamuxWrite(response, on: stream) }
                switch step.outcome {
                case .selected(let name, let leftover):
                    stream.listener = nil
                    stream.negotiated = true
                    stream.protocolName = name
                    consumed(size - leftover.readableBytes, on: stream)
                    if leftover.readableBytes > 0 { stream.bufferedBeforeHandler.append(leftover) }
                    services[name]?.serve(stream, session: self)
                case .rejected:
                    consumed(size, on: stream)
                    flushOutbound()
                    reset(stream, reason: .protocolRefused)
                default:
                    consumed(size, on: stream)
                }
            } catch {
                reset(stream, reason: .negotiationFailed)
            }
            return
        }
        if var dialer = stream.dialer {
            do {
                let outcome = try dialer.receive(buffer)
                stream.dialer = dialer
                switch outcome {
                case .accepted(let leftover):
                    stream.dialer = nil
                    stream.negotiated = true
                    consumed(size - leftover.readableBytes, on: stream)
                    if leftover.readableBytes > 0 { stream.bufferedBeforeHandler.append(leftover) }
                    stream.onNegotiated?(true)
                    stream.onNegotiated = nil
                    stream.startReading()
                case .rejected:
                    consumed(size, on: stream)
                    stream.onNegotiated?(false)
                    stream.onNegotiated = nil
                    reset(stream, reason: .protocolRefused)
                default:
                    consumed(size, on: stream)
                }
            } catch {
                stream.onNegotiated?(false)
                stream.onNegotiated = nil
                reset(stream, reason: .negotiationFailed)
            }
        }
    }

    /// Opens a stream and pipelines the protocol negotiation; `negotiated` reports whether the
    /// peer accepted. Data written right away rides behind the protocol line.
    public func openStream(protocol name: String, negotiated: @escaping (Bool) -> Void) -> MuxStream? {
        guard let context, context.channel.isActive, let dialer = try? MultistreamDialer(protocolName: name),
              let id = try? yamux.openStream() else { return nil }
        let stream = MuxStream(id: id.rawValue, protocolName: name, mux: self)
        stream.dialer = dialer
        stream.onNegotiated = negotiated
        streams[id.rawValue] = stream
        _ = yamuxWrite(dialer.initialBytes, on: stream)
        flushOutbound()
        return stream
    }

    func isWritable(_ stream: MuxStream) -> Bool {
        stream.overflow.isEmpty && yamux.isWritable(YamuxStreamID(rawValue: stream.id)) && (context?.channel.isWritable ?? false)
    }

    func write(_ buffer: ByteBuffer, on stream: MuxStream) -> Bool {
        let more = yamuxWrite(buffer, on: stream)
        flushOutbound()
        return more && (context?.channel.isWritable ?? false)
    }

    /// Never drops data silently: what yamux will not take now waits in the stream's overflow. A
    /// writer that ignores `write`'s answer and pushes the overflow past `MuxStream.maxOverflowBytes`
    /// gets its stream reset instead of growing memory.
    private func yamuxWrite(_ buffer: ByteBuffer, on stream: MuxStream) -> Bool {
        guard stream.overflow.isEmpty else {
            return keepInOverflow(buffer, on: stream)
        }
        do {
            return try yamux.write(buffer, to: YamuxStreamID(rawValue: stream.id))
        } catch YamuxError.streamNotWritable {
            return keepInOverflow(buffer, on: stream)
        } catch {
            return false
        }
    }

    private func keepInOverflow(_ buffer: ByteBuffer, on stream: MuxStream) -> Bool {
        guard stream.overflowBytes + buffer.readableBytes <= MuxStream.maxOverflowBytes else {
            reset(stream, reason: .overflow)
            return false
        }
        stream.overflow.append(buffer)
        stream.overflowBytes += buffer.readableBytes
        return false
    }

    /// Moves overflow into yamux as its queue drains; true when nothing is left waiting.
    private func drainOverflow(_ stream: MuxStream) -> Bool {
        let id = YamuxStreamID(rawValue: stream.id)
        while let first = stream.overflow.first, yamux.isWritable(id) {
            stream.overflow.removeFirst()
            stream.overflowBytes -= first.readableBytes
            _ = try? yamux.write(first, to: id)
        }
        if stream.overflow.isEmpty && stream.closeAfterOverflow {
            stream.closeAfterOverflow = false
            yamux.close(id)
        }
        return stream.overflow.isEmpty
    }

    func closeWrite(_ stream: MuxStream) {
        if stream.overflow.isEmpty {
            yamux.close(YamuxStreamID(rawValue: stream.id))
        } else {
            stream.closeAfterOverflow = true
        }
        flushOutbound()
        removeIfDone(stream)
    }

    func reset(_ stream: MuxStream, reason: MuxStreamReset = .application) {
        reason.count()
        yamux.reset(YamuxStreamID(rawValue: stream.id))
        streams[stream.id] = nil
        flushOutbound()
        stream.end(.reset)
    }

    func consumed(_ count: Int, on stream: MuxStream) {
        guard count > 0 else { return }
        yamux.consumed(count, on: YamuxStreamID(rawValue: stream.id), now: self.now())
        flushOutbound()
    }

    private func removeIfDone(_ stream: MuxStream) {
        if !yamux.isOpen(YamuxStreamID(rawValue: stream.id)) {
            streams[stream.id] = nil
        }
    }

    private func flushOutbound() {
        guard established, let context else { return }
        if let out = yamux.takeOutbound() {
            let count = out.readableBytes
            unsentBytes += count
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.assumeIsolated().whenComplete { [weak self] _ in self?.written(count) }
            context.writeAndFlush(wrapOutboundOut(out), promise: written)
        }
        // Streams yamux forgot (both directions closed, or reset) are forgotten here too; their
        // overflow could never be sent.
        for id in yamux.takeRemovedStreams() {
            guard let stream = streams.removeValue(forKey: id) else { continue }
            if !stream.ended { stream.end(.reset) }
        }
    }

    private func written(_ count: Int) {
        unsentBytes -= min(count, unsentBytes)
        if readPending, unsentBytes < unsentLimit / 2, let context {
            readPending = false
            context.read()
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            for stream in Array(streams.values) where drainOverflow(stream) && isWritable(stream) { stream.onWritable?() }
        }
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !established {
            onEstablished?(nil)
            onEstablished = nil
        }
        let all = streams.values
        streams = [:]
        for stream in all { stream.end(.sessionClosed) }
        onClosed?()
        onClosed = nil
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Closes the session gracefully (GoAway, then the carrier).
    public func close() {
        yamux.goAway(.normal)
        flushOutbound()
        context?.close(promise: nil)
    }
}
