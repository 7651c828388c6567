import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// A session built by hand with the product's own libraries, for probes the proxy never makes:
/// a circuit through `front` to `target` (one preface), Noise_PQ XX as initiator with a chosen
/// msg3 payload, and yamux on top.
final class ProbeSession: @unchecked Sendable {
    let channel: any Channel
    /// The initiator's view of the handshake: nil when it failed before msg3 went out.
    let established: EventLoopFuture<SessionEstablished?>
    /// Completes when the far end ends the carrier: EOF (the front forwards the target's FIN
    /// as a half-close; the dialer allows remote half-closure) or the channel closing.
    let peerClosed: EventLoopFuture<Void>
    private let mux: NIOLoopBoundBox<MuxHandler?>

    private init(channel: any Channel, established: EventLoopFuture<SessionEstablished?>, peerClosed: EventLoopFuture<Void>,
                 mux: NIOLoopBoundBox<MuxHandler?>) {
        self.channel = channel
        self.established = established
        self.peerClosed = peerClosed
        self.mux = mux
    }

    /// Opens the circuit and starts the handshake. Returns once the front answered STATUS OK.
    /// `localAddress` binds the carrier's source address first (e.g. 127.0.1.1).
    static func open(on loop: any EventLoop, front: DemoStatus.City, target: DemoStatus.City, identity: IdentityKey,
                     localAddress: SocketAddress? = nil,
                     payload: @escaping @Sendable ([UInt8]) throws -> [UInt8]) throws -> ProbeSession {
        guard let frontKEM = Hex.decode(front.kemPK), let targetID = NodeID(hex: target.nodeID) else {
            throw E2EError("bad keys in the demo status for \(front.name)/\(target.name)")
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: targetID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: front.allianceUUID, purpose: .session))
        let role = SessionRole.initiator(identity: identity, responder: targetID, payload: payload)
        let established = loop.makePromise(of: SessionEstablished?.self)
        let peerClosed = loop.makePromise(of: Void.self)
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: MuxHandler.self, eventLoop: loop)
        let connected = CircuitDialer.connect(on: loop, host: front.transit.host, port: front.transit.port,
                                              hopKEMPublicKey: frontKEM, message: .hop(hop), timeout: .seconds(10),
                                              localAddress: localAddress) { channel in
            let mux = MuxHandler(role: .client)
            mux.onEstablished = { event in established.succeed(event) }
            box.value = mux
            try channel.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role, onFailure: { _ in
                established.succeed(nil)
            }))
            try channel.pipeline.syncOperations.addHandler(mux)
            try channel.pipeline.syncOperations.addHandler(EndWatcher(promise: peerClosed))
        }
        connected.whenFailure { _ in established.succeed(nil) }
        let (channel, _) = try awaitFuture(connected, timeout: 15, what: "the circuit through \(front.name) to \(target.name)")
        return ProbeSession(channel: channel, established: established.futureResult, peerClosed: peerClosed.futureResult, mux: box)
    }

    /// What a stream negotiation produced.
    struct StreamOutcome: Sendable {
        let negotiated: Bool
        let received: [UInt8]
        let end: String?
    }

    /// Opens a stream for `protocolName`, pipelines `send` behind the protocol line and waits for
    /// `expect` bytes back (0: only the negotiation). Bounded by `timeout`.
    func stream(_ protocolName: String, send: [UInt8] = [], expect: Int = 0, timeout: TimeInterval = 10) throws -> StreamOutcome {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: StreamOutcome.self)
        let box = self.mux
        loop.execute {
            guard let mux = box.value else {
                promise.fail(E2EError("no mux on the channel"))
                return
            }
            var received: [UInt8] = []
            var negotiated = false
            var streamRef: MuxStream?
            let stream = mux.openStream(protocol: protocolName) { accepted in
                negotiated = accepted
                if !accepted || expect == 0 {
                    promise.succeed(StreamOutcome(negotiated: accepted, received: received, end: nil))
                }
            }
            guard let stream else {
                promise.fail(E2EError("openStream(\(protocolName)) returned nil (session closed?)"))
                return
            }
            streamRef = stream
            stream.onData = { buffer in
                received += buffer.readableBytesView
                streamRef?.consumed(buffer.readableBytes)
                if received.count >= expect && expect > 0 {
                    promise.succeed(StreamOutcome(negotiated: negotiated, received: received, end: nil))
                }
            }
            stream.onEnd = { end in
                promise.succeed(StreamOutcome(negotiated: negotiated, received: received, end: "\(end)"))
            }
            if !send.isEmpty { stream.write(ByteBuffer(bytes: send)) }
        }
        loop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
            promise.fail(E2EError("stream \(protocolName): no outcome within \(timeout) s"))
        }
        return try awaitFuture(promise.futureResult, timeout: timeout + 5, what: "stream \(protocolName)")
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Sits at the tail of a probe's pipeline and reports the end of the carrier.
private final class EndWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise.succeed()
    }
}

/// Blocks (off the event loop) until `future` completes or `timeout` passes.
func awaitFuture<T: Sendable>(_ future: EventLoopFuture<T>, timeout: TimeInterval, what: String) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    future.whenComplete { result in
        box.set(result)
        semaphore.signal()
    }
    guard semaphore.wait(timeout: .now() + timeout) == .success, let result = box.get() else {
        throw E2EError("\(what): no result within \(timeout) s")
    }
    return try result.get()
}

/// Whether `future` completes within `timeout` (its value ignored).
func completes<T: Sendable>(_ future: EventLoopFuture<T>, within timeout: TimeInterval) -> Bool {
    let semaphore = DispatchSemaphore(value: 0)
    future.whenComplete { _ in semaphore.signal() }
    return semaphore.wait(timeout: .now() + timeout) == .success
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, any Error>?

    func set(_ result: Result<T, any Error>) {
        lock.lock()
        defer { lock.unlock() }
        if value == nil { value = result }
    }

    func get() -> Result<T, any Error>? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
