import Logging
import MontanaCrypto
import MontanaExit
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore

/// Decides what a node does with each accepted preface: terminate (a control session or an
/// exit session), relay to a known member (fronts only), or refuse with a status. Budgets (preface
/// rates, handshake shares, circuits) are `SourceAdmission`'s, applied by the accept handler
/// around this decision.
struct NodeRouter: CircuitRouter {
    let identity: IdentityKey
    let roles: NodeRoles
    /// A member this node may relay to: static `[[peers]]` first, then the directory's live members.
    let members: @Sendable (NodeID) -> AllianceMember?
    let exit: ExitRuntime?
    let services: @Sendable (SessionAdmission, any Channel) -> [any StreamService]
    let observer: NodeObserver
    let logger: Logger
    /// Receive-window growth of all sessions on this node comes out of this budget.
    var windowBudget = SharedBudget()
    /// Streams of control sessions (no egress) open at once on this node.
    let controlStreams = SharedBudget(capacity: ControlSessionLimits.streamsPerNode)
    /// This node holds and resumes sessions (an exit with `resume_hold_seconds` > 0): msg2's
    /// `features` says so, and circuits with purpose `resume` that end here are read.
    var resumes = false

    func route(_ message: Preface.Message) -> RouteDecision {
        switch message {
        case .hop(let hop):
            guard let peer = hop.peer, let target = NodeID(multihash: peer.id) else { return .refuse(.malformedMessage) }
            if target == identity.nodeID {
                switch hop.ext.purpose {
                case .echo?: return .echo
                case .resume?: return resumes ? .resume : .refuse(.permissionDenied)
                default: return terminate()
                }
            }
            guard roles.contains(.front) else { return .refuse(.permissionDenied) }
            guard let member = members(target) else { return .refuse(.noReservation) }
            return .relay(member.target)
        case .stop(let stop):
            // A relay (a front) asks us to accept a session (or resume one): we are its target.
            if stop.ext.purpose == .resume { return resumes ? .resume : .refuse(.permissionDenied) }
            return terminate()
        }
    }

    private func terminate() -> RouteDecision {
        let exit = self.exit
        let members = self.members
        let features = TLV.encode([TLV(type: PayloadTLV.features,
                                       value: [UInt8].le(resumes ? SessionCryptoHandler.featureResume : UInt32(0)))])
        let role = SessionRole.responder(identity: identity, payload: features) { peer, bindingHash in
            let tlvs: [TLV]
            do {
                tlvs = try TLV.decode(peer.payload)
            } catch {
                throw SessionError.protocolViolation("malformed msg3 payload")
            }
            // A member (gossiping, or attesting this exit) is admitted whatever the exit's admission mode.
            let member = members(NodeID(identityPublicKey: peer.identityPublicKey)) != nil
            guard let exit, let auth = tlvs.first(where: { $0.type == PayloadTLV.egressAuth }) else {
                // No EgressAuth (or not an exit): the session stays up without egress.
                return SessionAdmission(member: member)
            }
            // A malformed or failing EgressAuth closes the connection at once (PROTOCOL.md 7.1).
            let account = try exit.verify(auth.value, initiator: peer.identityPublicKey, bindingHash: bindingHash, member: member)
            return SessionAdmission(account: account, member: member)
        }
        let services = self.services
        let observer = self.observer
        let windowBudget = self.windowBudget
        let controlStreams = self.controlStreams
        return .terminate(role) { channel in
            let mux = MuxHandler(role: .server, windowBudget: windowBudget)
            mux.onEstablished = { event in
                guard let event else { return }
                // Members' sessions (gossip, attestations) are counted apart from users'.
                if event.admission.member {
                    observer.metrics.memberSessionsTotal.increment()
                } else {
                    observer.metrics.sessionsActive.increment()
                    observer.metrics.sessionsTotal.increment()
                    if event.admission.account != nil { observer.metrics.egressSessionsTotal.increment() }
                }
                // A session without egress only pings, echoes and reads the directory: few
                // streams, small backlogs, and a node-wide cap on such streams.
                if event.admission.account == nil {
                    mux.setControlServices(services(event.admission, channel), streamBudget: controlStreams)
                } else {
                    mux.setServices(services(event.admission, channel))
                }
            }
            mux.onClosed = {
                if let event = mux.establishedEvent, !event.admission.member { observer.metrics.sessionsActive.decrement() }
            }
            try channel.pipeline.syncOperations.addHandler(mux)
        }
    }
}

/// The exit's shared state: EgressAuth verification (with its nonce memory) and the policy.
final class ExitRuntime: Sendable {
    let policy: ExitPolicy
    /// The policy for members' sessions: members' transit endpoints are not denied (attestation
    /// echoes go there); everything else, including this node's own addresses, as `policy`.
    let memberPolicy: ExitPolicy
    let limits: EgressLimits
    /// The node's stub resolver (`[dns]`), shared by every session.
    let resolver: StubResolver
    /// Per-account session and stream caps (`[limits] sessions_per_account`, `streams_per_account`).
    let budget: AccountBudget
    private let verifier: NIOLockedValueBox<EgressAuthVerifier>
    /// Members' sessions (attestations) prove EgressAuth like anyone, but need no pass.
    private let memberVerifier: NIOLockedValueBox<EgressAuthVerifier>

    init(node: NodeID, admission: Admission, policy: ExitPolicy, memberPolicy: ExitPolicy, limits: EgressLimits, resolver: StubResolver,
         budget: AccountBudget) {
        self.memberPolicy = memberPolicy
        verifier = NIOLockedValueBox(EgressAuthVerifier(exit: node, admission: admission))
        memberVerifier = NIOLockedValueBox(EgressAuthVerifier(exit: node, admission: .anyAccount))
        self.policy = policy
        self.limits = limits
        self.resolver = resolver
        self.budget = budget
    }

    /// The egress service for one established session of `account`; `channel` is its carrier.
    /// Bytes this exit carried for an account (stored + pending), for pass quotas; set at start.
    let usage = NIOLockedValueBox<(@Sendable ([UInt8]) -> UInt64)?>(nil)

    func egressService(account: AdmittedAccount, member: Bool, channel: any Channel, observer: any EgressObserver) -> EgressService {
        let usage = self.usage.withLockedValue { $0 }
        return EgressService(account: account, policy: member ? memberPolicy : policy, limits: limits, observer: observer, resolver: resolver,
                             budget: budget, sessionClosed: channel.closeFuture, usage: usage)
    }

    var admissionLabel: String { verifier.withLockedValue { $0.admission.label } }

    func verify(_ bytes: [UInt8], initiator: [UInt8], bindingHash: [UInt8], member: Bool = false) throws -> AdmittedAccount {
        // ML-DSA verification outside the lock would be nicer; the nonce memory needs it inside.
        try (member ? memberVerifier : verifier).withLockedValue { v in
            try v.verify(bytes, initiatorPublicKey: initiator, bindingHash: bindingHash, now: WallClock.now())
        }
    }
}
