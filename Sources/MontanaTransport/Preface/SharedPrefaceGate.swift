import MontanaCrypto
import NIOConcurrencyHelpers

/// A preface that opened and passed every check except being remembered: the handler remembers
/// it (`SharedPrefaceGate.remember`) only when it is about to answer.
public struct OpenedPreface: Sendable {
    public let message: Preface.Message
    public let keys: Preface.Keys
    let digest: ReplayDigest
}

/// One `PrefaceGate` shared by every connection of a node (replays must be caught across
/// connections and event loops).
public final class SharedPrefaceGate: Sendable {
    private let gate: NIOLockedValueBox<PrefaceGate>
    public let key: KEMKey

    public init(key: KEMKey, capacity: Int = PrefaceGate.defaultCapacity, alliance: [UInt8]? = nil) {
        self.key = key
        gate = NIOLockedValueBox(PrefaceGate(capacity: capacity, alliance: alliance))
    }

    /// Decapsulates, opens and checks a preface — freshness, alliance, not a replay, room in the
    /// memory and in `owner`'s share — without remembering it.
    public func open(_ preface: [UInt8], now: UInt64, owner: ReplayOwner?, ownerShare: Int) throws(PrefaceError) -> OpenedPreface {
        // Decapsulation and AEAD happen outside the lock; only the replay memory is shared.
        let opened = try Preface.open(preface, with: key)
        let ct = Array(preface.prefix(KEMKey.ciphertextSize))
        let digest: Result<ReplayDigest, PrefaceError> = gate.withLockedValue { g in
            do throws(PrefaceError) {
                return .success(try g.inspect(opened.message, kemCiphertext: ct, now: now, owner: owner, ownerLimit: ownerShare))
            } catch {
                return .failure(error)
            }
        }
        return OpenedPreface(message: opened.message, keys: opened.keys, digest: try digest.get())
    }

    /// Remembers an opened preface against replay for 240 s (fails if a concurrent connection
    /// remembered the same one, or took the last room, in the meantime).
    public func remember(_ opened: OpenedPreface, now: UInt64, owner: ReplayOwner?, ownerShare: Int) throws(PrefaceError) {
        let result: Result<Void, PrefaceError> = gate.withLockedValue { g in
            do throws(PrefaceError) {
                try g.remember(opened.digest, now: now, owner: owner, ownerLimit: ownerShare)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Open, check and remember in one step (no per-owner share).
    public func admit(_ preface: [UInt8], now: UInt64) throws(PrefaceError) -> (message: Preface.Message, keys: Preface.Keys) {
        let opened = try open(preface, now: now, owner: nil, ownerShare: .max)
        try remember(opened, now: now, owner: nil, ownerShare: .max)
        return (opened.message, opened.keys)
    }

    public var count: Int { gate.withLockedValue { $0.count } }

    public func count(of owner: ReplayOwner) -> Int { gate.withLockedValue { $0.count(of: owner) } }
}
