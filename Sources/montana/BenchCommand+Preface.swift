import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire

/// What admission costs a node per preface: opening a valid one (X-Wing decapsulation, HKDF,
/// AEAD), rejecting garbage that reaches decapsulation, and refusing one on the token buckets
/// before decapsulation.
struct PrefaceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preface",
        abstract: "CPU per preface: decapsulation, garbage rejection, and the admission refusal before decapsulation."
    )

    @Option(help: "Prefaces per measurement.")
    var iterations = 2000

    func run() throws {
        let key = try KEMKey.generate()
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: try IdentityKey.generate().nodeID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), purpose: .session))
        let valid = try (0..<iterations).map { _ in try Preface.seal(.hop(hop), to: key.publicKey).bytes }
        let garbage = (0..<iterations).map { _ in SecureRandom.bytes(Preface.size) }

        let gate = SharedPrefaceGate(key: key, capacity: iterations * 2)
        let open = measure(valid) { _ = try? gate.open($0, now: WallClock.now(), owner: nil, ownerShare: .max) }
        let bad = measure(garbage) { _ = try? gate.open($0, now: WallClock.now(), owner: nil, ownerShare: .max) }

        // Refusals on the buckets: one /24 far over its budget, as in a flood.
        let admission = SourceAdmission()
        let sources = (0..<iterations).map { SourceAddress(ipv4: 0xc000_0200 | UInt32($0 % 8 + 2)) }
        var refused = 0
        let bucket = measure(sources) { source in
            let ticket = admission.connect(source)
            if admission.admitPreface(ticket) != nil { refused += 1 }
            admission.release(ticket)
        }

        print("preface admission, \(iterations) prefaces per row, thread CPU time on one core")
        print(String(format: "open a valid preface (X-Wing decapsulation + HKDF + AEAD + checks): %.1f µs → ~%.0f/s per core",
                     open, 1_000_000 / open))
        print(String(format: "reject a garbage preface that reaches decapsulation: %.1f µs → 1000/s cost %.1f %% of a core",
                     bad, bad / 10))
        print(String(format: "refuse a preface on the source/network buckets (before decapsulation): %.2f µs → 1000/s cost %.3f %% of a core (%d of %d refused)",
                     bucket, bucket / 10, refused, iterations))
        print("(socket accept/read/close per connection comes on top; see docs/OPERATIONS.md)")
    }

    /// Median µs of this thread's CPU time per item over batches of 100 (CPU time, not wall time,
    /// so a busy machine does not inflate it).
    private func measure<T>(_ items: [T], _ body: (T) -> Void) -> Double {
        var perItem: [Double] = []
        var index = 0
        while index < items.count {
            let batch = items[index..<min(index + 100, items.count)]
            let start = Self.threadCPUNanoseconds()
            for item in batch { body(item) }
            let spent = Self.threadCPUNanoseconds() &- start
            perItem.append(Double(spent) / 1000 / Double(batch.count))
            index += batch.count
        }
        return perItem.sorted()[perItem.count / 2]
    }

    private static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(max(0, ts.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, ts.tv_nsec))
    }
}
