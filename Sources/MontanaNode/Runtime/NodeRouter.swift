import Logging
import MontanaCrypto
import MontanaExit
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore

/// Decides what a node does with each accepted preface: terminate (a control session or an
/// exit session), relay to a known member (fronts only), or refuse with a status.
struct NodeRouter: CircuitRouter {
    let identity: IdentityKey
    let roles: NodeRoles
    let members: [NodeID: AllianceMember]
    let handshakes: HandshakeRateLimiter
    let exit: ExitRuntime?
    let services: @Sendable (SessionAdmission, any Channel) -> [any StreamService]
    let observer: NodeObserver
    let logger: Logger

    func route(_ message: Preface.Message) -> RouteDecision {
        switch message {
        case .hop(let hop):
            guard let peer = hop.peer, let target = NodeID(multihash: peer.id) else { return .refuse(.malformedMessage) }
            if target == identity.nodeID { return terminate() }
            guard roles.contains(.front) else { return .refuse(.permissionDenied) }
            guard let member = members[target] else { return .refuse(.noReservation) }
            return .relay(member.target)
        case .stop:
            // A relay (a front) asks us to accept a session: we are its target.
            return terminate()
        }
    }

    private func terminate() -> RouteDecision {
        guard handshakes.tryAcquire() else { return .refuse(.resourceLimitExceeded) }
        let exit = self.exit
        let features = TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0)))])
        let role = SessionRole.responder(identity: identity, payload: features) { peer, bindingHash in
            let tlvs: [TLV]
            do {
                tlvs = try TLV.decode(peer.payload)
            } catch {
                throw SessionError.protocolViolation("malformed msg3 payload")
            }
            guard let exit, let auth = tlvs.first(where: { $0.type == PayloadTLV.egressAuth }) else {
                // No EgressAuth (or not an exit): the session stays up without egress.
                return SessionAdmission()
            }
            // A malformed or failing EgressAuth closes the connection at once (PROTOCOL.md 7.1).
            let account = try exit.verify(auth.value, initiator: peer.identityPublicKey, bindingHash: bindingHash)
            return SessionAdmission(account: account)
        }
        let services = self.services
        let observer = self.observer
        return .terminate(role) { channel in
            let mux = MuxHandler(role: .server)
            mux.onEstablished = { event in
                guard let event else { return }
                observer.metrics.sessionsActive.increment()
                observer.metrics.sessionsTotal.increment()
                mux.setServices(services(event.admission, channel))
            }
            mux.onClosed = {
                if mux.establishedEvent != nil { observer.metrics.sessionsActive.decrement() }
            }
            try channel.pipeline.syncOperations.addHandler(mux)
        }
    }
}

/// The exit's shared state: EgressAuth verification (with its nonce memory) and the policy.
final class ExitRuntime: Sendable {
    let policy: ExitPolicy
    let limits: EgressLimits
    private let verifier: NIOLockedValueBox<EgressAuthVerifier>

    init(node: NodeID, admission: Admission, policy: ExitPolicy, limits: EgressLimits) {
        verifier = NIOLockedValueBox(EgressAuthVerifier(exit: node, admission: admission))
        self.policy = policy
        self.limits = limits
    }

    var admissionLabel: String { verifier.withLockedValue { $0.admission.label } }

    func verify(_ bytes: [UInt8], initiator: [UInt8], bindingHash: [UInt8]) throws -> AdmittedAccount {
        // ML-DSA verification outside the lock would be nicer; the nonce memory needs it inside.
        try verifier.withLockedValue { v in
            try v.verify(bytes, initiatorPublicKey: initiator, bindingHash: bindingHash, now: WallClock.now())
        }
    }
}
