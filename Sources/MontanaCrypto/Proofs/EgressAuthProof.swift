import MontanaWire

/// Building and checking EgressAuth, the IBT level-3 proof (PROTOCOL.md section 7.1).
/// `proof = Sign(account, "mt-tunnel-online" ‖ exit_node_id ‖ u64 LE window_slot ‖ nonce)`,
/// `nonce = H("montana-ibt-nonce" ‖ h_pre3)`.
public enum EgressAuthProof {
    static let proofLabel = Array("mt-tunnel-online".utf8)
    static let nonceLabel = Array("montana-ibt-nonce".utf8)

    public static func nonce(bindingHash: [UInt8]) -> [UInt8] {
        Digests.sha256(nonceLabel + bindingHash)
    }

    public static func proofMessage(exitNodeID: NodeID, windowSlot: UInt64, nonce: [UInt8]) -> [UInt8] {
        proofLabel + exitNodeID.bytes + [UInt8].le(windowSlot) + nonce
    }

    public static func build(account: IdentityKey, exit: NodeID, bindingHash: [UInt8], now: UInt64,
                             signedPass: [UInt8]? = nil) throws -> EgressAuth {
        // The pass length travels as a u16; a longer pass cannot be carried.
        if let signedPass, signedPass.count > EgressAuth.maxPassSize { throw EgressAuthError.malformed }
        let n = nonce(bindingHash: bindingHash)
        let proof = try account.sign(proofMessage(exitNodeID: exit, windowSlot: TimeWindow.slot(unixSeconds: now), nonce: n))
        return EgressAuth(accountPublicKey: account.publicKey, nonce: n, proof: proof, signedPass: signedPass)
    }
}

public enum EgressAuthError: Error, Equatable, Sendable, CustomStringConvertible {
    case missing
    case malformed
    case identityMismatch
    case nonceMismatch
    case badProof
    case nonceReused
    case tooManySessions
    /// The node-wide nonce memory is full (fail closed until the window moves on).
    case nonceMemoryFull
    case notAdmitted(String)

    public var reason: String {
        switch self {
        case .missing: return "missing"
        case .malformed: return "malformed"
        case .identityMismatch: return "identity_mismatch"
        case .nonceMismatch: return "nonce_mismatch"
        case .badProof: return "bad_proof"
        case .nonceReused: return "nonce_reused"
        case .tooManySessions: return "nonce_cache_full"
        case .nonceMemoryFull: return "nonce_memory_full"
        case .notAdmitted: return "not_admitted"
        }
    }

    public var description: String {
        if case .notAdmitted(let why) = self { return "account not admitted: \(why)" }
        return "EgressAuth rejected: \(reason)"
    }
}

/// Who may use an exit.
public enum Admission: Sendable {
    /// Any account with a valid proof.
    case anyAccount
    /// Only the listed account ids.
    case allowList(Set<[UInt8]>)
    /// A `SignedPass` from one of these issuers (ML-DSA-65 public keys), or an allow-listed account.
    case pass(issuers: [[UInt8]], allowList: Set<[UInt8]>)

    public var label: String {
        switch self {
        case .anyAccount: return "any-account"
        case .allowList: return "allow-list"
        case .pass: return "pass"
        }
    }
}

/// What an exit learns from a valid EgressAuth.
public struct AdmittedAccount: Sendable {
    public let accountID: [UInt8]
    public let pass: AccountPass?
}

/// Verifies EgressAuth against the session it arrived in and remembers nonces: at most 256 per
/// account and 65,536 in total inside the two-slot validity window; beyond that it refuses
/// (fail closed). Not thread-safe: guard with a lock when shared.
public struct EgressAuthVerifier: Sendable {
    public static let perAccountLimit = 256
    public static let totalLimit = 65536

    /// This verifier's bounds (the defaults above; tests lower them).
    public let accountLimit: Int
    public let nodeLimit: Int
    /// The slot whose predecessors were last forgotten: expiry runs once per slot, not per proof.
    private var prunedSlot: UInt64 = 0

    public let exit: NodeID
    public let admission: Admission
    private var nonces: [[UInt8]: UInt64] = [:]  // nonce -> window slot
    private var perAccount: [[UInt8]: Int] = [:]
    private var nonceOwners: [[UInt8]: [UInt8]] = [:]

    public init(exit: NodeID, admission: Admission, perAccountLimit: Int = EgressAuthVerifier.perAccountLimit,
                totalLimit: Int = EgressAuthVerifier.totalLimit) {
        self.exit = exit
        self.admission = admission
        accountLimit = max(1, perAccountLimit)
        nodeLimit = max(1, totalLimit)
    }

    /// `initiatorPublicKey` is the handshake's proven initiator identity; `bindingHash` is `h`
    /// just before msg3's payload.
    public mutating func verify(_ bytes: [UInt8], initiatorPublicKey: [UInt8], bindingHash: [UInt8], now: UInt64) throws(EgressAuthError) -> AdmittedAccount {
        guard let auth = try? EgressAuth.decode(bytes) else { throw .malformed }
        guard ConstantTime.equal(auth.accountPublicKey, initiatorPublicKey) else { throw .identityMismatch }
        guard ConstantTime.equal(auth.nonce, EgressAuthProof.nonce(bindingHash: bindingHash)) else { throw .nonceMismatch }
        let slot = TimeWindow.slot(unixSeconds: now)
        let valid = [slot, slot &- 1].contains { s in
            IdentityKey.verify(publicKey: auth.accountPublicKey, signature: auth.proof,
                               message: EgressAuthProof.proofMessage(exitNodeID: exit, windowSlot: s, nonce: auth.nonce))
        }
        guard valid else { throw .badProof }
        let accountID = AccountID.derive(accountPublicKey: auth.accountPublicKey)
        let pass = try admit(accountID: accountID, signedPass: auth.signedPass, now: now)
        try remember(nonce: auth.nonce, account: accountID, slot: slot)
        return AdmittedAccount(accountID: accountID, pass: pass)
    }

    private func admit(accountID: [UInt8], signedPass: [UInt8]?, now: UInt64) throws(EgressAuthError) -> AccountPass? {
        switch admission {
        case .anyAccount:
            return nil
        case .allowList(let allowed):
            guard allowed.contains(accountID) else { throw .notAdmitted("account is not on the allow-list") }
            return nil
        case .pass(let issuers, let allowed):
            if let signedPass {
                do {
                    return try PassSigner.verify(signedPass, issuers: issuers, accountID: accountID, now: now)
                } catch {
                    throw .notAdmitted("\(error)")
                }
            }
            guard allowed.contains(accountID) else { throw .notAdmitted("no pass presented") }
            return nil
        }
    }

    private mutating func remember(nonce: [UInt8], account: [UInt8], slot: UInt64) throws(EgressAuthError) {
        // Proofs are only valid for the current and previous slot: older nonces can be forgotten.
        if slot > prunedSlot {
            prunedSlot = slot
            for (n, s) in nonces where s + 1 < slot {
                nonces[n] = nil
                if let owner = nonceOwners.removeValue(forKey: n) {
                    perAccount[owner, default: 1] -= 1
                    if perAccount[owner] == 0 { perAccount[owner] = nil }
                }
            }
        }
        guard nonces[nonce] == nil else { throw .nonceReused }
        guard perAccount[account, default: 0] < accountLimit else { throw .tooManySessions }
        guard nonces.count < nodeLimit else { throw .nonceMemoryFull }
        nonces[nonce] = slot
        nonceOwners[nonce] = account
        perAccount[account, default: 0] += 1
    }
}
