import MontanaCrypto
import MontanaSession
import MontanaWire
import NIOCore

/// A session this side initiated, once Noise_PQ XX completed: the carrier, its yamux, and what
/// the handshake proved about the responder.
public struct DialedSession: Sendable {
    public let channel: any Channel
    public let mux: MuxHandler
    public let established: SessionEstablished

    /// Closes the carrier (and with it every stream).
    public func close() { channel.close(promise: nil) }
}

extension MuxHandler: @unchecked Sendable {}

/// Dials a session straight to a member (the preface names the member itself, so the hop
/// terminates): the way members gossip and attest, and the way clients read the directory.
/// With `msg3` returning only `features` the session is a control session (no egress); an
/// EgressAuth in it makes an egress session.
public enum SessionDialer {
    public static let handshakeTimeout = TimeAmount.seconds(15)

    /// `msg3` builds the initiator's msg3 payload from the binding hash (`h_pre3`).
    public static func connect(on loop: any EventLoop, to target: RelayTarget, identity: IdentityKey, alliance: [UInt8]?,
                               purpose: CircuitPurpose = .session, localAddress: SocketAddress? = nil,
                               timeout: TimeAmount = handshakeTimeout, carrier: CarrierDial? = nil,
                               msg3: @escaping @Sendable ([UInt8]) throws -> [UInt8] = { _ in SessionDialer.featuresPayload })
        -> EventLoopFuture<DialedSession> {
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: target.nodeID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: purpose))
        let role = SessionRole.initiator(identity: identity, responder: target.nodeID, payload: msg3)
        let established = loop.makePromise(of: SessionEstablished.self)
        let muxBox = NIOLoopBoundBox.makeEmptyBox(valueType: MuxHandler.self, eventLoop: loop)
        let deadline = loop.scheduleTask(in: timeout) { established.fail(CircuitError.timedOut) }
        return CircuitDialer.connect(on: loop, host: target.host, port: target.port, hopKEMPublicKey: target.kemPublicKey,
                                     message: .hop(hop), timeout: timeout, localAddress: localAddress, carrier: carrier) { channel in
            let mux = MuxHandler(role: .client)
            mux.onEstablished = { event in
                if let event { established.succeed(event) } else { established.fail(CircuitError.carrierClosed) }
            }
            muxBox.value = mux
            try channel.pipeline.syncOperations.addHandler(SessionCryptoHandler(role: role, onFailure: { established.fail($0) }))
            try channel.pipeline.syncOperations.addHandler(mux)
            channel.closeFuture.whenComplete { _ in established.fail(CircuitError.carrierClosed) }
        }
        .flatMap { channel, _ in
            established.futureResult.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }.map { event -> DialedSession in
                deadline.cancel()
                return DialedSession(channel: channel, mux: muxBox.value!, established: event)
            }
        }
        .flatMapErrorThrowing { error in
            deadline.cancel()
            established.fail(error)
            throw error
        }
    }

    /// msg3 of a control session: `features = 0`, nothing else.
    public static let featuresPayload = TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0)))])
}

/// The echo preface (`CircuitPurpose.echo`): a member seals it to its *own* preface key and
/// sends it over some path that ends at its own transit port; its listener answers with the
/// source address it saw. Only the member itself can open the answer.
public enum EchoProbe {
    public static func preface(to own: RelayTarget, alliance: [UInt8]?) throws -> (bytes: [UInt8], keys: Preface.Keys) {
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: own.nodeID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: alliance, purpose: .echo))
        return try Preface.seal(.hop(hop), to: own.kemPublicKey)
    }

    /// The 16-byte address (IPv6 or v4-mapped) the listener saw, from its 80-byte answer.
    public static func observedAddress(answer: [UInt8], keys: Preface.Keys) -> [UInt8]? {
        guard case .hop(let message)? = try? Preface.openResponse(answer, keys: keys, expecting: .hop),
              message.status == .ok, let seen = message.peer?.addrs.first, seen.count == 18 else { return nil }
        return Array(seen[0..<16])
    }

    /// IPv4 as 4 bytes when the 16 are v4-mapped, else the 16.
    public static func compact(_ address: [UInt8]) -> [UInt8] {
        guard address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xff, address[11] == 0xff else { return address }
        return Array(address[12..<16])
    }
}
