import Foundation
import MontanaSession
import NIOCore

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
    private var lastHeard = NIODeadline.now().uptimeNanoseconds
    public private(set) var establishedEvent: SessionEstablished?
    /// Called once the session is established (or fails with nil) on the event loop.
    public var onEstablished: ((SessionEstablished?) -> Void)?
    public var onClosed: (() -> Void)?
    public var eventLoop: (any EventLoop)? { context?.eventLoop }
    public var streamCount: Int { streams.count }
    /// Free-form per-session state for services (e.g. the admitted account's stream counter).
    public var userInfo: [String: Any] = [:]

    public init(role: YamuxRole, services: [any StreamService] = []) {
        var configuration = YamuxConfiguration()
        configuration.maxDataFrameSize = 64 * 1024
        // Above the egress limit (256 per session), so the 257th egress stream gets the
        // protocol's status 3 instead of a bare yamux reset.
        configuration.maxInboundStreams = 512
        yamux = YamuxConnection(role: role, configuration: configuration)
        self.services = Dictionary(services.map { ($0.protocolName, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public func setServices(_ list: [any StreamService]) {
        services = Dictionary(list.map { ($0.protocolName, $0) }, uniquingKeysWith: { a, _ in a })
    }

    private static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
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
        context.fireUserInboundEventTriggered(event)
    }

    /// A session that has heard nothing for this long (three missed pings) is dead: close it, so
    /// a vanished peer does not hold streams and memory forever.
    static let silenceLimit: UInt64 = 95 * 1_000_000_000

    /// Keepalive and RTT measurement (the RTT feeds yamux window auto-tuning).
    private func schedulePing(_ context: ChannelHandlerContext, after delay: TimeAmount) {
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, let context = self.context else { return }
            if Self.now() - self.lastHeard > Self.silenceLimit {
                context.close(promise: nil)
                return
            }
            self.yamux.ping(now: Self.now())
            self.flushOutbound()
            self.schedulePing(context, after: .seconds(30))
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastHeard = Self.now()
        let buffer = unwrapInboundIn(data)
        let events: [YamuxEvent]
        do {
            events = try yamux.receive(buffer, now: Self.now())
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
        case .data(let id, let buffer):
            guard let stream = streams[id.rawValue] else { return }
            receive(buffer, on: stream)
        case .remoteClosed(let id):
            streams[id.rawValue]?.end(.remoteFinished)
        case .reset(let id):
            if let stream = streams.removeValue(forKey: id.rawValue) { stream.end(.reset) }
        case .writable(let id):
            guard let stream = streams[id.rawValue] else { return }
            if drainOverflow(stream) { stream.onWritable?() }
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
                    reset(stream)
                default:
                    consumed(size, on: stream)
                }
            } catch {
                reset(stream)
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
                    reset(stream)
                default:
                    consumed(size, on: stream)
                }
            } catch {
                stream.onNegotiated?(false)
                stream.onNegotiated = nil
                reset(stream)
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

    /// Never drops data: what yamux will not take now waits in the stream's overflow.
    private func yamuxWrite(_ buffer: ByteBuffer, on stream: MuxStream) -> Bool {
        guard stream.overflow.isEmpty else {
            stream.overflow.append(buffer)
            return false
        }
        do {
            return try yamux.write(buffer, to: YamuxStreamID(rawValue: stream.id))
        } catch YamuxError.streamNotWritable {
            stream.overflow.append(buffer)
            return false
        } catch {
            return false
        }
    }

    /// Moves overflow into yamux as its queue drains; true when nothing is left waiting.
    private func drainOverflow(_ stream: MuxStream) -> Bool {
        let id = YamuxStreamID(rawValue: stream.id)
        while let first = stream.overflow.first, yamux.isWritable(id) {
            stream.overflow.removeFirst()
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

    func reset(_ stream: MuxStream) {
        yamux.reset(YamuxStreamID(rawValue: stream.id))
        streams[stream.id] = nil
        flushOutbound()
        stream.end(.reset)
    }

    func consumed(_ count: Int, on stream: MuxStream) {
        guard count > 0 else { return }
        yamux.consumed(count, on: YamuxStreamID(rawValue: stream.id), now: Self.now())
        flushOutbound()
    }

    private func removeIfDone(_ stream: MuxStream) {
        if !yamux.isOpen(YamuxStreamID(rawValue: stream.id)) {
            streams[stream.id] = nil
        }
    }

    private func flushOutbound() {
        guard established, let context else { return }
        var wrote = false
        while let out = yamux.takeOutbound() {
            context.write(wrapOutboundOut(out), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
        // Streams whose both directions closed are forgotten.
        for (id, stream) in streams where !yamux.isOpen(YamuxStreamID(rawValue: id)) && stream.overflow.isEmpty {
            streams[id] = nil
            if !stream.ended { stream.end(.reset) }
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
