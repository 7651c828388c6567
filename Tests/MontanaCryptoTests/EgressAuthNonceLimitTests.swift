import Dispatch
import Foundation
import MontanaCrypto
import MontanaWire
import XCTest

/// The exit's EgressAuth nonce memory (`EgressAuthVerifier`, PROTOCOL.md 7.1): a replayed nonce
/// is refused for the whole validity window (the current and the previous two-minute slot), and
/// the memory is bounded — at most `perAccountLimit` (256) nonces per account inside the window —
/// failing closed (`nonce_cache_full`) rather than forgetting nonces that could still be replayed.
///
/// The node-wide bound (`totalLimit`, 65,536) is pushed past with a verifier built with a small
/// total (the same code path; 65,536 real proofs would take ~40 minutes of ML-DSA in a debug build).
final class EgressAuthNonceLimitTests: XCTestCase {
    /// A fixed clock so the validity window is the test's: slot = now / 120.
    private static let now: UInt64 = 1_800_000_000
    /// One validity slot in seconds (TimeWindow: 60 s windows, two per slot).
    private static let slotSeconds = TimeWindow.seconds * 2
    private static let exitKey = try! IdentityKey.generate()

    private var exit: NodeID { Self.exitKey.nodeID }

    /// A distinct 32-byte session hash per (account index, session index).
    private func bindingHash(_ account: Int, _ session: Int) -> [UInt8] {
        Digests.sha256(Array("binding \(account) \(session)".utf8))
    }

    /// EgressAuth proofs for sessions `range` of `account`, signed at `at`; built on every core
    /// (signing dominates the test's time).
    private func proofs(_ account: IdentityKey, index: Int, sessions range: Range<Int>, at: UInt64) throws -> [[UInt8]] {
        let exit = self.exit
        let hashes = range.map { bindingHash(index, $0) }
        let out = ProofSlots(count: hashes.count)
        DispatchQueue.concurrentPerform(iterations: hashes.count) { i in
            out.set(i, Result { try EgressAuthProof.build(account: account, exit: exit, bindingHash: hashes[i], now: at).encode() })
        }
        return try out.values()
    }

    private func verify(_ verifier: inout EgressAuthVerifier, _ proof: [UInt8], _ account: IdentityKey, index: Int, session: Int,
                        at: UInt64) throws -> AdmittedAccount {
        try verifier.verify(proof, initiatorPublicKey: account.publicKey, bindingHash: bindingHash(index, session), now: at)
    }

    private func refusal(_ body: () throws -> AdmittedAccount) -> EgressAuthError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error as? EgressAuthError
        }
    }

    func test_replayedNonceIsRefusedInTheSameAndTheNextSlot() throws {
        let account = try IdentityKey.generate()
        let proof = try XCTUnwrap(proofs(account, index: 0, sessions: 0..<1, at: Self.now).first)
        var verifier = EgressAuthVerifier(exit: exit, admission: .anyAccount)
        XCTAssertEqual(try verify(&verifier, proof, account, index: 0, session: 0, at: Self.now).accountID, account.accountID)

        let again = refusal { try verify(&verifier, proof, account, index: 0, session: 0, at: Self.now) }
        XCTAssertEqual(again, .nonceReused, "the same proof a second time is a replay")
        XCTAssertEqual(again?.reason, "nonce_reused")
        // The proof stays valid in the next slot, so the nonce must still be remembered there.
        let nextSlot = Self.now + Self.slotSeconds
        let later = refusal { try verify(&verifier, proof, account, index: 0, session: 0, at: nextSlot) }
        XCTAssertEqual(later, .nonceReused, "a replay in the next slot (proof still valid) is refused too")
        // Two slots on, the proof itself has expired (and the nonce may be forgotten).
        let expired = refusal { try verify(&verifier, proof, account, index: 0, session: 0, at: Self.now + 2 * Self.slotSeconds) }
        XCTAssertEqual(expired, .badProof)
    }

    func test_257thNonceOfOneAccountInTheWindowIsRefusedAndNothingIsForgotten() throws {
        let limit = EgressAuthVerifier.perAccountLimit
        XCTAssertEqual(limit, 256, "PROTOCOL.md 7.1 and docs/SECURITY.md give 256 per account")
        let account = try IdentityKey.generate()
        let signed = try proofs(account, index: 0, sessions: 0..<(limit + 1), at: Self.now)
        var verifier = EgressAuthVerifier(exit: exit, admission: .anyAccount)

        for session in 0..<limit {
            XCTAssertNoThrow(try verify(&verifier, signed[session], account, index: 0, session: session, at: Self.now),
                             "session \(session + 1) of \(limit) is within the per-account limit")
        }
        let over = refusal { try verify(&verifier, signed[limit], account, index: 0, session: limit, at: Self.now) }
        XCTAssertEqual(over, .tooManySessions, "the \(limit + 1)th nonce of one account in the window fails closed")
        XCTAssertEqual(over?.reason, "nonce_cache_full")
        // A refused nonce is not stored: were it remembered, its retry would be answered as a
        // replay, and refusals would fill the memory.
        XCTAssertEqual(refusal { try verify(&verifier, signed[limit], account, index: 0, session: limit, at: Self.now) },
                       .tooManySessions, "a refused nonce is refused as over the limit again, not as a replay")
        // Still refused in the next slot: the window holds the nonces of both slots.
        let nextSlot = Self.now + Self.slotSeconds
        let fresh = try proofs(account, index: 0, sessions: (limit + 1)..<(limit + 2), at: nextSlot)[0]
        XCTAssertEqual(refusal { try verify(&verifier, fresh, account, index: 0, session: limit + 1, at: nextSlot) }, .tooManySessions,
                       "the limit covers the whole validity window, not one slot")
        // Failing closed: no old nonce was dropped to make room; the first one is still a replay.
        XCTAssertEqual(refusal { try verify(&verifier, signed[0], account, index: 0, session: 0, at: Self.now) }, .nonceReused,
                       "a full account's first nonce must still be remembered")

        // The limit is per account: another account is admitted meanwhile.
        let other = try IdentityKey.generate()
        let otherProof = try proofs(other, index: 1, sessions: 0..<1, at: Self.now)[0]
        XCTAssertEqual(try verify(&verifier, otherProof, other, index: 1, session: 0, at: Self.now).accountID, other.accountID,
                       "one account at its limit does not refuse others")

        // Once the window has passed, the account's nonces are forgotten and it is admitted again.
        let afterWindow = Self.now + 2 * Self.slotSeconds
        let renewed = try proofs(account, index: 0, sessions: (limit + 2)..<(limit + 3), at: afterWindow)[0]
        XCTAssertEqual(try verify(&verifier, renewed, account, index: 0, session: limit + 2, at: afterWindow).accountID,
                       account.accountID, "after the validity window the account has its 256 again")
    }
}

/// Results written by `concurrentPerform` iterations, one slot each.
private final class ProofSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[UInt8], any Error>?]

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
    }

    func set(_ index: Int, _ result: Result<[UInt8], any Error>) {
        lock.lock()
        defer { lock.unlock() }
        slots[index] = result
    }

    func values() throws -> [[UInt8]] {
        lock.lock()
        defer { lock.unlock() }
        return try slots.map { slot in
            guard let slot else { throw EgressAuthError.malformed }
            return try slot.get()
        }
    }
}

extension EgressAuthNonceLimitTests {
    func test_nodeWideNonceMemoryFullIsRefusedForEveryAccountUntilTheWindowMovesOn() throws {
        var verifier = EgressAuthVerifier(exit: exit, admission: .anyAccount, perAccountLimit: 256, totalLimit: 6)
        let accounts = try (0..<4).map { _ in try IdentityKey.generate() }
        // Two sessions each for three accounts fill the six slots.
        for (index, account) in accounts.prefix(3).enumerated() {
            for (session, proof) in try proofs(account, index: index, sessions: 0..<2, at: Self.now).enumerated() {
                XCTAssertNoThrow(try verify(&verifier, proof, account, index: index, session: session, at: Self.now))
            }
        }
        let fourth = try XCTUnwrap(proofs(accounts[3], index: 3, sessions: 0..<1, at: Self.now).first)
        XCTAssertEqual(refusal { try verify(&verifier, fourth, accounts[3], index: 3, session: 0, at: Self.now) }, .nonceMemoryFull,
                       "a full memory refuses (fail closed) instead of forgetting live nonces")
        XCTAssertEqual(EgressAuthError.nonceMemoryFull.reason, "nonce_memory_full", "told apart from the per-account cap in metrics")
        // Two slots later the old nonces are past their window and the memory has room again.
        let later = Self.now + 2 * Self.slotSeconds
        let fresh = try XCTUnwrap(proofs(accounts[3], index: 3, sessions: 1..<2, at: later).first)
        XCTAssertNoThrow(try verify(&verifier, fresh, accounts[3], index: 3, session: 1, at: later))
    }
}

