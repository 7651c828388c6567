import MontanaExit
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers

/// Maps transport and egress events to metrics and per-account byte totals. Nothing here
/// records addresses, destinations or times per user (ARCHITECTURE.md, privacy).
final class NodeObserver: TransportObserver, EgressObserver {
    let metrics: MontanaMetrics
    /// Per-account deltas since the last flush to the accounting store.
    private let accounts = NIOLockedValueBox<[[UInt8]: AccountingStore.Totals]>([:])

    init(metrics: MontanaMetrics) {
        self.metrics = metrics
    }

    func prefaceRejected(reason: String) { metrics.prefaceRejections(reason: reason).increment() }

    func circuitOpened(relayed: Bool) {
        let kind: MontanaMetrics.CircuitKind = relayed ? .relayed : .local
        metrics.circuitsActive(kind).increment()
        metrics.circuitsTotal(kind).increment()
    }

    func circuitClosed(relayed: Bool) { metrics.circuitsActive(relayed ? .relayed : .local).decrement() }
    func relayedBytes(_ count: Int) { metrics.bytesRelayedTotal.increment(by: count) }
    func sessionFailed(reason: String) { metrics.handshakeFailures(reason: reason).increment() }

    func sessionResumed() { metrics.sessionsResumedTotal.increment() }

    func streamOpened(account: [UInt8]) {
        metrics.streamsActive.increment()
        metrics.streamsTotal.increment()
        accounts.withLockedValue { $0[account, default: AccountingStore.Totals()].streams += 1 }
    }

    func streamClosed(account: [UInt8]) { metrics.streamsActive.decrement() }

    func refused(account: [UInt8], reason: String) {
        metrics.policyRefusals(reason: reason).increment()
        accounts.withLockedValue { $0[account, default: AccountingStore.Totals()].refusals += 1 }
    }

    func openFailed(status: EgressOpenStatus) { metrics.egressOpenFailures(status: status).increment() }

    func bytes(account: [UInt8], up: Int, down: Int) {
        if up > 0 { metrics.bytesEgressTotal(.up).increment(by: up) }
        if down > 0 { metrics.bytesEgressTotal(.down).increment(by: down) }
        accounts.withLockedValue { a in
            a[account, default: AccountingStore.Totals()].bytesUp += up
            a[account, default: AccountingStore.Totals()].bytesDown += down
        }
    }

    /// Deltas taken for a flush and not yet written: still counted by `pendingBytes`, so a
    /// pass's quota never reads low while the write is under way.
    private let flushing = NIOLockedValueBox<[[UInt8]: AccountingStore.Totals]>([:])

    /// Takes the deltas gathered since the last call (for the accounting store); call
    /// `flushed()` once they are written.
    func takeDeltas() -> [[UInt8]: AccountingStore.Totals] {
        let taken = accounts.withLockedValue { a in
            defer { a = [:] }
            return a
        }
        flushing.withLockedValue { f in
            for (k, v) in taken { f[k, default: AccountingStore.Totals()].add(v) }
        }
        return taken
    }

    /// The deltas taken last are in the store now (or were given up on).
    func flushed() { flushing.withLockedValue { $0 = [:] } }

    /// Bytes of one account not yet flushed.
    func pendingBytes(account: [UInt8]) -> UInt64 {
        let count = { (t: AccountingStore.Totals?) -> UInt64 in
            guard let t else { return 0 }
            return UInt64(clamping: t.bytesUp) &+ UInt64(clamping: t.bytesDown)
        }
        return accounts.withLockedValue { count($0[account]) } &+ flushing.withLockedValue { count($0[account]) }
    }

    /// Totals not yet flushed, summed over accounts.
    var pendingTotals: AccountingStore.Totals {
        accounts.withLockedValue { a in a.values.reduce(into: AccountingStore.Totals()) { $0.add($1) } }
    }
}

/// Egress of members' attestation sessions: counted in the node-wide policy and failure metrics,
/// but not in per-account accounting (members are not users, and their few bytes would only
/// blur the account figures).
struct MemberEgressObserver: EgressObserver {
    let metrics: MontanaMetrics

    func streamOpened(account: [UInt8]) {}
    func streamClosed(account: [UInt8]) {}
    func refused(account: [UInt8], reason: String) { metrics.policyRefusals(reason: reason).increment() }
    func openFailed(status: EgressOpenStatus) { metrics.egressOpenFailures(status: status).increment() }
    func bytes(account: [UInt8], up: Int, down: Int) {}
}
