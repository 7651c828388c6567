import Foundation
import MontanaCrypto
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// A control session to one node, built with the product's own libraries by someone who holds
/// only the node's public KEM key (as anyone reading a subscription does): a preface naming the
/// node itself, Noise_PQ XX with a throwaway identity, yamux on top. No account.
final class AttackSession: @unchecked Sendable {
    let channel: any Channel
    let mux: MuxHandler

    private init(channel: any Channel, mux: MuxHandler) {
        self.channel = channel
        self.mux = mux
    }

    static func open(on loop: any EventLoop, to city: DemoTarget.City, source: String? = nil, timeout: TimeInterval = 15) throws -> AttackSession {
        guard let kem = Hex.decode(city.kemPK), let id = NodeID(hex: city.nodeID) else { throw AbuseError("bad keys for \(city.name)") }
        let identity = try IdentityKey.generate()
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: id.multihash), ext: RelayExtension(ts: WallClock.now(), alliance: city.allianceUUID, purpose: .session))
        let role = SessionRole.initiator(identity: identity, responder: id, payload: { _ in [] })
        let established = loop.makePromise(of: Void.self)
        let ref = MuxRef()
        let local = try source.map { try SocketAddress(ipAddress: $0, port: 0) }
        let connected = CircuitDialer.connect(on: loop, host: city.transit.host, port: city.transit.port, hopKEMPublicKey: kem,
                                              message: .hop(hop), timeout: .seconds(10), localAddress: local) { channel in
            let mux = MuxHandler(role: .client)
            ref.mux = mux
            mux.onEstablished = { event in
                if event != nil { established.succeed() } else { established.fail(AbuseError("handshake failed")) }
            }
            try channel.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role, onFailure: { error in
                established.fail(AbuseError("session failed: \(error)"))
            }))
            try channel.pipeline.syncOperations.addHandler(mux)
        }
        connected.whenFailure { established.fail($0) }
        let (channel, _) = try wait(connected, timeout: timeout)
        try wait(established.futureResult, timeout: timeout)
        guard let mux = ref.mux else { throw AbuseError("no session") }
        return AttackSession(channel: channel, mux: mux)
    }

    func close() { channel.close(promise: nil) }
}

/// Hands the session's mux (created on the event loop) to the attacking thread; the mux itself is
/// only touched on its event loop afterwards.
final class MuxRef: @unchecked Sendable {
    var mux: MuxHandler?
}

/// Blocks (off the event loop) until `future` completes or `timeout` passes.
func wait<T: Sendable>(_ future: EventLoopFuture<T>, timeout: TimeInterval) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let box = NIOLockedBox<Result<T, any Error>?>(nil)
    future.whenComplete { result in
        box.set(result)
        semaphore.signal()
    }
    guard semaphore.wait(timeout: .now() + timeout) == .success, let result = box.get() else {
        throw AbuseError("no answer within \(timeout) s")
    }
    return try result.get()
}

final class NIOLockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func update(_ f: (inout T) -> Void) { lock.lock(); f(&value); lock.unlock() }
}
