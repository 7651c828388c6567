import Metrics
import MontanaDirectory
import MontanaExit
import MontanaWire
import Prometheus

/// The product's metrics, all prefixed `montana_`, exposed in Prometheus text format.
///
/// Labels carry only values from fixed sets defined in code (circuit kinds, directions,
/// reasons, statuses): never addresses, destinations or account ids, so a scrape reveals
/// nothing about users. Free-form reasons that are not short lower-case tokens become `other`.
public final class MontanaMetrics: Sendable {
    /// The process-wide instance. The first use bootstraps swift-metrics with a Prometheus
    /// factory on its registry, so metrics made anywhere with the swift-metrics API (including
    /// lower layers that never import this module) appear in the same exposition.
    public static let shared: MontanaMetrics = {
        let metrics = MontanaMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        return metrics
    }()

    public enum CircuitKind: String, Sendable, CaseIterable {
        /// This node is the circuit's end: a session runs here.
        case local
        /// This node splices the circuit on to another member.
        case relayed
    }

    public enum Direction: String, Sendable, CaseIterable {
        /// Client -> destination.
        case up
        /// Destination -> client.
        case down
    }

    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public let sessionsActive: CoreMetrics.Meter
    public let sessionsTotal: CoreMetrics.Counter
    /// `montana_member_sessions_total`: sessions other members opened (gossip, attestations).
    public let memberSessionsTotal: CoreMetrics.Counter
    /// `montana_egress_sessions_total`: users' sessions that proved an account (EgressAuth), i.e.
    /// carry egress; the rest of `montana_sessions_total` are control sessions (directory, probes).
    public let egressSessionsTotal: CoreMetrics.Counter
    public let streamsActive: CoreMetrics.Meter
    public let streamsTotal: CoreMetrics.Counter
    public let bytesRelayedTotal: CoreMetrics.Counter
    /// `montana_sessions_resumed_total`: sessions that took a new carrier after losing theirs
    /// (an authenticated resume request, PROTOCOL.md 5.3).
    public let sessionsResumedTotal: CoreMetrics.Counter
    private let circuitsActiveByKind: [CircuitKind: CoreMetrics.Meter]
    private let circuitsTotalByKind: [CircuitKind: CoreMetrics.Counter]
    private let bytesEgressByDirection: [Direction: CoreMetrics.Counter]

    /// A private instance on its own registry, not bootstrapped; for tests and embedding.
    /// Production code uses `shared`.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        let factory = PrometheusMetricsFactory(registry: registry)
        self.registry = registry
        self.factory = factory
        sessionsActive = CoreMetrics.Meter(label: "montana_sessions_active", factory: factory)
        sessionsTotal = CoreMetrics.Counter(label: "montana_sessions_total", factory: factory)
        memberSessionsTotal = CoreMetrics.Counter(label: "montana_member_sessions_total", factory: factory)
        egressSessionsTotal = CoreMetrics.Counter(label: "montana_egress_sessions_total", factory: factory)
        streamsActive = CoreMetrics.Meter(label: "montana_streams_active", factory: factory)
        streamsTotal = CoreMetrics.Counter(label: "montana_streams_total", factory: factory)
        bytesRelayedTotal = CoreMetrics.Counter(label: "montana_bytes_relayed_total", factory: factory)
        sessionsResumedTotal = CoreMetrics.Counter(label: "montana_sessions_resumed_total", factory: factory)
        // Labelled series for fixed label sets exist from the start, so dashboards see zeros.
        var active: [CircuitKind: CoreMetrics.Meter] = [:]
        var total: [CircuitKind: CoreMetrics.Counter] = [:]
        for kind in CircuitKind.allCases {
            active[kind] = CoreMetrics.Meter(label: "montana_circuits_active", dimensions: [("kind", kind.rawValue)], factory: factory)
            total[kind] = CoreMetrics.Counter(label: "montana_circuits_total", dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        circuitsActiveByKind = active
        circuitsTotalByKind = total
        var egress: [Direction: CoreMetrics.Counter] = [:]
        for direction in Direction.allCases {
            egress[direction] = CoreMetrics.Counter(label: "montana_bytes_egress_total", dimensions: [("direction", direction.rawValue)], factory: factory)
        }
        bytesEgressByDirection = egress
        for reason in ExitPolicyDenyReason.allCases {
            _ = policyRefusals(reason: reason)
        }
    }

    public func circuitsActive(_ kind: CircuitKind) -> CoreMetrics.Meter { circuitsActiveByKind[kind]! }
    public func circuitsTotal(_ kind: CircuitKind) -> CoreMetrics.Counter { circuitsTotalByKind[kind]! }
    public func bytesEgressTotal(_ direction: Direction) -> CoreMetrics.Counter { bytesEgressByDirection[direction]! }

    /// `reason` is a code-defined token such as `SessionError.reason`.
    public func handshakeFailures(reason: String) -> CoreMetrics.Counter {
        counter("montana_handshake_failures_total", "reason", reason)
    }

    /// `reason` is a code-defined token such as `PrefaceError.reason`.
    public func prefaceRejections(reason: String) -> CoreMetrics.Counter {
        counter("montana_preface_rejections_total", "reason", reason)
    }

    public func policyRefusals(reason: ExitPolicyDenyReason) -> CoreMetrics.Counter {
        policyRefusals(reason: reason.rawValue)
    }

    /// For refusals outside the address policy, e.g. `stream_limit` or `rate_limit` (PROTOCOL.md 7.3).
    public func policyRefusals(reason: String) -> CoreMetrics.Counter {
        counter("montana_policy_refusals_total", "reason", reason)
    }

    public func egressOpenFailures(status: EgressOpenStatus) -> CoreMetrics.Counter {
        counter("montana_egress_open_failures_total", "status", Self.label(status))
    }

    /// The Prometheus text exposition (format 0.0.4) of everything in the registry.
    /// `montana_directory_rejected_total{reason}`: records and attestations dropped, by reason.
    public func directoryRejected(_ reason: RecordRejection) {
        counter("montana_directory_rejected_total", "reason", reason.rawValue).increment()
    }

    /// `montana_gossip_exchanges_total{outcome}`: peer exchanges (ok, served, unreachable, refused, rate_limited, not_member).
    public func gossipExchanges(outcome: String) {
        counter("montana_gossip_exchanges_total", "outcome", outcome).increment()
    }

    /// `montana_client_steering_events_total{kind}`: a client's new sessions, lost fronts, reserve
    /// choices and reserve failures (the kinds of `steering.events` in its `/status`).
    public func steeringEvents(kind: String) {
        counter("montana_client_steering_events_total", "kind", kind).increment()
    }

    /// `montana_attestations_total{outcome}`: attestations this node made (geolocated, session_verified) or failed.
    public func attestations(outcome: String) {
        counter("montana_attestations_total", "outcome", outcome).increment()
    }

    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    private func counter(_ name: String, _ label: String, _ value: String) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: [(label, Self.labelToken(value))], factory: factory)
    }

    static func label(_ status: EgressOpenStatus) -> String {
        switch status {
        case .open: return "open"
        case .refusedByPolicy: return "refused_by_policy"
        case .unreachable: return "unreachable"
        case .rateLimited: return "rate_limited"
        }
    }

    /// Keeps label values to short `[a-z0-9_]` tokens: anything else (an address, a host name,
    /// an error message with user data in it) is collapsed to `other`.
    static func labelToken(_ value: String) -> String {
        let ok = (1...40).contains(value.utf8.count) && value.utf8.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "_")
        }
        return ok ? value : "other"
    }
}
