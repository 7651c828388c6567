import MontanaCrypto
import NIOConcurrencyHelpers

/// One `PrefaceGate` shared by every connection of a node (replays must be caught across
/// connections and event loops).
public final class SharedPrefaceGate: Sendable {
    private let gate: NIOLockedValueBox<PrefaceGate>
    public let key: KEMKey

    public init(key: KEMKey, capacity: Int = 65536, alliance: [UInt8]? = nil) {
        self.key = key
        gate = NIOLockedValueBox(PrefaceGate(capacity: capacity, alliance: alliance))
    }

    public func admit(_ preface: [UInt8], now: UInt64) throws(PrefaceError) -> (message: Preface.Message, keys: Preface.Keys) {
        // Decapsulation and AEAD happen outside the lock; only the replay memory is shared.
        let opened = try Preface.open(preface, with: key)
        var result: Result<Void, PrefaceError> = .success(())
        gate.withLockedValue { g in
            do {
                try g.check(opened.message, kemCiphertext: Array(preface.prefix(KEMKey.ciphertextSize)), now: now)
            } catch let error as PrefaceError {
                result = .failure(error)
            } catch {
                result = .failure(.undecodable)
            }
        }
        try result.get()
        return opened
    }
}
