import MontanaCrypto
import MontanaSession
import NIOConcurrencyHelpers
import NIOCore

/// Why admission refused a connection or a preface; `reason` is the metrics label
/// (`montana_preface_rejections_total{reason}`).
public enum AdmissionRefusal: String, Sendable, Equatable {
    /// Over a concurrent-circuit cap (source, network, member or node).
    case circuits = "circuit_limit"
    case sourceRate = "source_rate"
    case networkRate = "network_rate"
    case nodeRate = "node_rate"
    case networkHandshakes = "network_handshakes"
    case memberHandshakes = "member_handshakes"
    case nodeHandshakes = "handshake_limit"

    public var reason: String { rawValue }
}

/// One accepted connection as admission sees it: the prefixes it is charged to, and whether it
/// holds a circuit slot, a discarder slot, or nothing. Created by `SourceAdmission.connect`;
/// its mutable state is only touched under the admission's lock.
public final class AdmissionTicket: @unchecked Sendable {
    enum Phase {
        /// Holds a circuit slot; `source`/`network` are where it was counted.
        case circuit(source: PrefixTable.Slot, network: PrefixTable.Slot)
        case memberCircuit
        /// Over a circuit cap at accept: holds nothing until it joins the discard pool.
        case overCap
        case discarding(id: UInt64)
        case done
    }

    public let source: SourceAddress
    public let isMember: Bool
    let sourcePrefix: SourcePrefix
    let networkPrefix: SourcePrefix
    var phase: Phase
    /// Whom the replay memory charges this connection's prefaces to, and that owner's share.
    public let replayOwner: ReplayOwner
    public let replayShare: Int

    init(source: SourceAddress, isMember: Bool, sourcePrefix: SourcePrefix, networkPrefix: SourcePrefix, phase: Phase,
         replayShare: Int) {
        self.source = source
        self.isMember = isMember
        self.sourcePrefix = sourcePrefix
        self.networkPrefix = networkPrefix
        self.phase = phase
        // A member is its own owner (its exact address); everyone else is charged to the network.
        replayOwner = isMember ? source.prefix(bits: 128).replayOwner : networkPrefix.replayOwner
        self.replayShare = replayShare
    }

    /// False when the connection was over a circuit cap at accept: it must only be discarded.
    public var holdsCircuit: Bool {
        switch phase {
        case .circuit, .memberCircuit: return true
        case .overCap, .discarding, .done: return false
        }
    }
}

/// What a connection refused for any reason becomes: a silent discarder, or (when the pool is
/// full and this network has no older discarder to give up) closed at once.
public enum DiscardOutcome: Sendable, Equatable {
    case pooled
    case closeNow
}

/// Admission that one source cannot exhaust (issue 6 item 3). Thread-safe; one per node, used by
/// every accepted connection:
///
/// - at accept, a circuit slot within the per-source, per-network (or per-member) and node caps —
///   over a cap the connection is not closed but discarded silently like garbage;
/// - for each complete preface, before decapsulation: a token from the source's, the network's and
///   the node's preface buckets (members: the node's only);
/// - before terminating (handshake) or relaying: a token of the network's (or member's) handshake
///   share, and for a handshake also of the node's budget;
/// - refused connections join a bounded discard pool (per network and in total); discarders do
///   not count against the circuit caps.
///
/// Prefix tables are bounded (`maxPrefixes`); nothing here is logged, and addresses live only
/// in memory while they have a budget.
public final class SourceAdmission: Sendable {
    private struct Member {
        var handshake: TokenBucket
        var circuits = 0
    }

    private struct Discarder {
        let id: UInt64
        let channel: any Channel
        let ticket: AdmissionTicket
    }

    private struct State: @unchecked Sendable {
        var sources: PrefixTable
        var networks: PrefixTable
        var members: [SourceAddress: Member]
        var nodePreface: TokenBucket
        var nodeHandshake: TokenBucket
        var circuits = 0
        var discard: [SourcePrefix: [Discarder]] = [:]
        var discarders = 0
        var nextID: UInt64 = 0
    }

    public let limits: AdmissionLimits
    /// Members' addresses: static peers plus the directory's live members (`setMembers`).
    private let memberAddresses: NIOLockedValueBox<Set<SourceAddress>>
    private let staticMembers: Set<SourceAddress>
    private let clock: @Sendable () -> UInt64
    private let state: NIOLockedValueBox<State>

    /// `members`: configured peers' addresses. `clock`: monotonic nanoseconds (tests inject one).
    public init(limits: AdmissionLimits = AdmissionLimits(), members: Set<SourceAddress> = [],
                clock: @escaping @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }) {
        self.limits = limits
        memberAddresses = NIOLockedValueBox(members)
        staticMembers = members
        self.clock = clock
        let now = clock()
        let l = limits
        let noHandshake = BucketRate(rate: 1, burst: 1)  // sources have no handshake share of their own
        state = NIOLockedValueBox(State(
            sources: PrefixTable(capacity: l.maxPrefixes,
                                 preface: BucketRate(rate: l.sourcePrefacesPerSecond, burst: l.sourcePrefaceBurst),
                                 handshake: noHandshake, now: now),
            networks: PrefixTable(capacity: l.maxPrefixes,
                                  preface: BucketRate(rate: l.networkPrefacesPerSecond, burst: l.networkPrefaceBurst),
                                  handshake: BucketRate(rate: l.networkHandshakesPerSecond, burst: l.networkHandshakesPerSecond),
                                  now: now),
            members: Dictionary(uniqueKeysWithValues: members.map {
                ($0, Member(handshake: TokenBucket(burst: l.memberHandshakesPerSecond, now: now)))
            }),
            nodePreface: TokenBucket(burst: l.nodePrefaceBurst, now: now),
            nodeHandshake: TokenBucket(burst: l.handshakesPerSecond, now: now)))
    }

    /// Replaces the directory's members (their transit hosts): they relay many users' circuits
    /// and gossip, so they get member shares instead of per-prefix budgets. At most 4096 (the
    /// directory's bound) besides the static ones.
    public func setMembers(_ addresses: Set<SourceAddress>) {
        let all = staticMembers.union(addresses.prefix(4096))
        let now = clock()
        let burst = limits.memberHandshakesPerSecond
        memberAddresses.withLockedValue { $0 = all }
        state.withLockedValue { s in
            for a in all where s.members[a] == nil { s.members[a] = Member(handshake: TokenBucket(burst: burst, now: now)) }
            for a in s.members.keys where !all.contains(a) && (s.members[a]?.circuits ?? 0) == 0 { s.members[a] = nil }
        }
    }

    // MARK: connections

    /// Registers an accepted connection. Never refuses outright: over a circuit cap the ticket
    /// holds no slot (`holdsCircuit` false) and the caller discards the connection silently.
    public func connect(_ address: SourceAddress?) -> AdmissionTicket {
        let source = address ?? SourceAddress(ipv4: 0)
        let l = limits
        let isMember = memberAddresses.withLockedValue { $0.contains(source) }
        let sourcePrefix = source.prefix(bits: source.isIPv4 ? l.ipv4SourceBits : l.ipv6SourceBits)
        let networkPrefix = source.prefix(bits: source.isIPv4 ? l.ipv4NetworkBits : l.ipv6NetworkBits)
        let now = clock()
        return state.withLockedValue { s in
            let phase: AdmissionTicket.Phase
            if s.circuits >= l.circuitsTotal {
                phase = .overCap
            } else if isMember {
                if s.members[source, default: Member(handshake: TokenBucket(burst: l.memberHandshakesPerSecond, now: now))].circuits
                    >= l.circuitsPerMember {
                    phase = .overCap
                } else {
                    s.members[source]?.circuits += 1
                    s.circuits += 1
                    phase = .memberCircuit
                }
            } else {
                // The network first: a flood from one network must not fill the source table.
                let network = s.networks.slot(networkPrefix, now: now)
                if s.networks.with(network, { $0.circuits }) >= l.circuitsPerNetwork {
                    phase = .overCap
                } else {
                    let slot = s.sources.slot(sourcePrefix, now: now)
                    if s.sources.with(slot, { $0.circuits }) >= l.circuitsPerSource {
                        phase = .overCap
                    } else {
                        s.networks.with(network) { $0.circuits += 1 }
                        s.sources.with(slot) { $0.circuits += 1 }
                        s.circuits += 1
                        phase = .circuit(source: slot, network: network)
                    }
                }
            }
            return AdmissionTicket(source: source, isMember: isMember, sourcePrefix: sourcePrefix, networkPrefix: networkPrefix,
                                   phase: phase, replayShare: isMember ? l.replayPerMember : l.replayPerNetwork)
        }
    }

    /// Called once when the connection closes: gives back whatever the ticket holds.
    public func release(_ ticket: AdmissionTicket) {
        state.withLockedValue { s in
            Self.giveBack(ticket, in: &s)
            ticket.phase = .done
        }
    }

    private static func giveBack(_ ticket: AdmissionTicket, in s: inout State) {
        switch ticket.phase {
        case .circuit(let source, let network):
            s.sources.with(source) { $0.circuits = max(0, $0.circuits - 1) }
            s.networks.with(network) { $0.circuits = max(0, $0.circuits - 1) }
            s.circuits = max(0, s.circuits - 1)
        case .memberCircuit:
            if let n = s.members[ticket.source]?.circuits { s.members[ticket.source]?.circuits = max(0, n - 1) }
            s.circuits = max(0, s.circuits - 1)
        case .discarding(let id):
            let key = ticket.networkPrefix
            if var list = s.discard[key], let i = list.firstIndex(where: { $0.id == id }) {
                list.remove(at: i)
                s.discard[key] = list.isEmpty ? nil : list
                s.discarders = max(0, s.discarders - 1)
            }
        case .overCap, .done:
            break
        }
    }

    /// Moves a refused connection into the discard pool, giving back its circuit slot. When the
    /// network's share of the pool is full its oldest discarder is closed to make room; when the
    /// whole pool is full and this network has none to give up, the caller closes this one.
    public func discard(_ ticket: AdmissionTicket, channel: any Channel) -> DiscardOutcome {
        let l = limits
        let (outcome, evicted): (DiscardOutcome, (any Channel)?) = state.withLockedValue { s in
            if case .discarding = ticket.phase { return (.pooled, nil) }
            if case .done = ticket.phase { return (.closeNow, nil) }
            Self.giveBack(ticket, in: &s)
            ticket.phase = .done
            let key = ticket.networkPrefix
            var list = s.discard[key] ?? []
            var evicted: (any Channel)?
            if list.count >= l.discardPerNetwork || s.discarders >= l.discardTotal {
                guard !list.isEmpty else { return (.closeNow, nil) }
                let oldest = list.removeFirst()
                oldest.ticket.phase = .done
                s.discarders -= 1
                evicted = oldest.channel
            }
            s.nextID &+= 1
            list.append(Discarder(id: s.nextID, channel: channel, ticket: ticket))
            s.discard[key] = list
            s.discarders += 1
            ticket.phase = .discarding(id: s.nextID)
            return (.pooled, evicted)
        }
        evicted?.close(promise: nil)
        return outcome
    }

    // MARK: budgets

    /// A complete preface has arrived: one token from the source's, the network's and the node's
    /// preface buckets (a member: the node's only), all or nothing. Nil when admitted.
    public func admitPreface(_ ticket: AdmissionTicket) -> AdmissionRefusal? {
        let now = clock()
        let l = limits
        return state.withLockedValue { s in
            guard ticket.holdsCircuit else { return .circuits }
            let node = BucketRate(rate: l.nodePrefacesPerSecond, burst: l.nodePrefaceBurst)
            if ticket.isMember {
                guard s.nodePreface.has(rate: node.rate, burst: node.burst, now: now) else { return .nodeRate }
                s.nodePreface.take()
                return nil
            }
            let network = s.networks.slot(ticket.networkPrefix, now: now)
            let networkRate = s.networks.preface
            guard s.networks.with(network, { $0.preface.has(rate: networkRate.rate, burst: networkRate.burst, now: now) }) else {
                return .networkRate
            }
            let source = s.sources.slot(ticket.sourcePrefix, now: now)
            let sourceRate = s.sources.preface
            guard s.sources.with(source, { $0.preface.has(rate: sourceRate.rate, burst: sourceRate.burst, now: now) }) else {
                return .sourceRate
            }
            guard s.nodePreface.has(rate: node.rate, burst: node.burst, now: now) else { return .nodeRate }
            s.networks.with(network) { $0.preface.take() }
            s.sources.with(source) { $0.preface.take() }
            s.nodePreface.take()
            return nil
        }
    }

    /// The preface makes this node a session responder: a token of the network's (or member's)
    /// handshake share and of the node's handshake budget, both or neither.
    public func admitHandshake(_ ticket: AdmissionTicket) -> AdmissionRefusal? {
        share(ticket, node: true)
    }

    /// The preface asks this node to relay: a token of the network's (or member's) handshake
    /// share, so the circuits one client network opens through a front are bounded before they
    /// reach an exit's per-member share. The node budget is not spent (no signature here).
    public func admitRelay(_ ticket: AdmissionTicket) -> AdmissionRefusal? {
        share(ticket, node: false)
    }

    private func share(_ ticket: AdmissionTicket, node: Bool) -> AdmissionRefusal? {
        let now = clock()
        let l = limits
        return state.withLockedValue { s in
            guard ticket.holdsCircuit else { return .circuits }
            let hps = l.handshakesPerSecond
            if node && !s.nodeHandshake.has(rate: hps, burst: hps, now: now) { return .nodeHandshakes }
            if ticket.isMember {
                let m = l.memberHandshakesPerSecond
                guard var member = s.members[ticket.source], member.handshake.has(rate: m, burst: m, now: now) else {
                    return .memberHandshakes
                }
                member.handshake.take()
                s.members[ticket.source] = member
            } else {
                let network = s.networks.slot(ticket.networkPrefix, now: now)
                let rate = s.networks.handshake
                guard s.networks.with(network, { $0.handshake.has(rate: rate.rate, burst: rate.burst, now: now) }) else {
                    return .networkHandshakes
                }
                s.networks.with(network) { $0.handshake.take() }
            }
            if node { s.nodeHandshake.take() }
            return nil
        }
    }

    // MARK: observation

    /// Connections holding a circuit slot (not discarders).
    public var activeCircuits: Int { state.withLockedValue { $0.circuits } }
    public var activeDiscarders: Int { state.withLockedValue { $0.discarders } }
    /// Entries in the source and network tables (bounded by `maxPrefixes` each).
    public var trackedPrefixes: (sources: Int, networks: Int) {
        state.withLockedValue { ($0.sources.count, $0.networks.count) }
    }
}
