import MontanaCrypto
import MontanaWire

/// An account pass as a file (`montana pass issue` writes it; a client or a subscription carries it):
///
///     {"format":"montana-pass-v1","account_id":hex,"issuer":hex node id,"not_before":unix,
///      "not_after":unix,"quota_bytes":n,"signed":hex SignedEnvelope}
///
/// `signed` is what travels on the wire (EgressAuth, PROTOCOL.md section 7.1); the other fields
/// repeat it for people and must agree with it. Decoding checks that they do; the signature is
/// checked against issuer keys by `verify` (or by the subscription that names the issuers).
public struct PassFile: Codable, Sendable, Equatable {
    public static let currentFormat = "montana-pass-v1"
    /// An encoded pass envelope is about 3.4 KB (3309 bytes of signature); 8192 leaves room.
    public static let maxSignedBytes = 8192
    /// A pass lasts 1...3660 days (ten years): longer passes cannot be revoked by expiry in any
    /// useful time.
    public static let days: ClosedRange<Int> = 1...3660
    /// `not_before` is set 300 s (5 minutes) before issue, so an exit whose clock runs a little
    /// behind the issuer's accepts a fresh pass at once.
    public static let clockSkewSeconds: UInt64 = 300
    /// Pass files are small; 64 KiB bounds reading one.
    public static let maxFileBytes = 64 * 1024

    /// The decoded pass (what `signedBytes` says).
    public let pass: AccountPass
    /// The encoded `SignedEnvelope`, exactly as signed.
    public let signedBytes: [UInt8]

    public var accountID: [UInt8] { pass.accountID }
    public var issuer: [UInt8] { pass.issuer }
    public var notBefore: UInt64 { pass.notBefore }
    public var notAfter: UInt64 { pass.notAfter }
    public var quotaBytes: UInt64 { pass.quotaBytes }

    /// Wraps a signed pass; nil unless `signed` is an envelope holding a valid `AccountPass`.
    public init?(signed: [UInt8]) {
        guard signed.count <= Self.maxSignedBytes,
              let envelope = try? SignedEnvelope.decode(signed),
              let pass = try? AccountPass.decode(envelope.payload) else { return nil }
        self.pass = pass
        self.signedBytes = signed
    }

    /// Issues a pass for `accountID` (32 bytes, `IdentityKey.accountID`) signed by the alliance's
    /// pass issuer key: valid from `now - 300` for `days` days, with `quotaBytes` (0 = none).
    public static func issue(secret: AllianceSecret, accountID: [UInt8], days: Int, quotaBytes: UInt64, now: UInt64) throws -> PassFile {
        guard accountID.count == 32 else {
            throw SubscriptionFileError.invalid(file: "(new pass)", key: "account_id", problem: "must be 32 bytes, got \(accountID.count)")
        }
        guard Self.days.contains(days) else {
            throw SubscriptionFileError.invalid(file: "(new pass)", key: "days", problem: "must be \(Self.days.lowerBound)...\(Self.days.upperBound), got \(days)")
        }
        // days ≤ 3660, so days × 86,400 fits easily; `now` comes from the clock and is checked.
        let (notAfter, overflow) = now.addingReportingOverflow(UInt64(days) * 86_400)
        guard !overflow else { throw SubscriptionFileError.invalid(file: "(new pass)", key: "not_after", problem: "overflows") }
        let notBefore = now >= clockSkewSeconds ? now - clockSkewSeconds : 0
        let pass = AccountPass(accountID: accountID, notBefore: notBefore, notAfter: notAfter, tier: 0,
                               issuer: secret.passIssuerKey.nodeID.bytes, quotaBytes: quotaBytes)
        let envelope = try PassSigner.sign(pass, with: secret.passIssuerKey)
        guard let file = PassFile(signed: envelope.encode()) else {
            throw SubscriptionFileError.invalid(file: "(new pass)", key: "signed", problem: "does not decode")
        }
        return file
    }

    /// Checks signature, issuer, account and validity time (`PassSigner.verify`).
    public func verify(issuers: [[UInt8]], now: UInt64) throws(SignedObjectError) -> AccountPass {
        try PassSigner.verify(signedBytes, issuers: issuers, accountID: pass.accountID, now: now)
    }

    /// True if one of `issuers` (ML-DSA-65 public keys) names this pass's issuer and its signature
    /// verifies. Time is not checked: a subscription may carry a pass that starts later.
    public func isSigned(byOneOf issuers: [[UInt8]]) -> Bool {
        guard let envelope = try? SignedEnvelope.decode(signedBytes),
              let key = issuers.first(where: { NodeID(identityPublicKey: $0).bytes == pass.issuer }) else { return false }
        return SignedObject.verify(envelope, label: SignedObject.passLabel, publicKey: key)
    }

    public static func load(path: String) throws(SubscriptionFileError) -> PassFile {
        try decode(SubscriptionJSON.read(path, limit: maxFileBytes), file: path)
    }

    public static func decode(_ data: [UInt8], file: String) throws(SubscriptionFileError) -> PassFile {
        try SubscriptionJSON.decode(PassFile.self, from: data, file: file, limit: maxFileBytes)
    }

    /// Pretty, sorted-key JSON with a final newline.
    public func encoded() -> [UInt8] { SubscriptionJSON.encode(self) }

    /// Writes atomically with mode 0600: a pass is no key, but it names the account, which is
    /// nobody else's business.
    public func write(to path: String) throws {
        try SubscriptionJSON.writeAtomically(encoded(), to: path, mode: 0o600)
    }

    // MARK: - Codable

    enum CodingKeys: String, CodingKey {
        case format, issuer, signed
        case accountID = "account_id"
        case notBefore = "not_before"
        case notAfter = "not_after"
        case quotaBytes = "quota_bytes"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.currentFormat, forKey: .format)
        try c.encode(Hex.encode(pass.accountID), forKey: .accountID)
        try c.encode(Hex.encode(pass.issuer), forKey: .issuer)
        try c.encode(pass.notBefore, forKey: .notBefore)
        try c.encode(pass.notAfter, forKey: .notAfter)
        try c.encode(pass.quotaBytes, forKey: .quotaBytes)
        try c.encode(Hex.encode(signedBytes), forKey: .signed)
    }

    /// Checks every field and that each agrees with the signed pass.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        guard format == Self.currentFormat else {
            throw c.problem(.format, "must be \"\(Self.currentFormat)\", found \(Printable.quote(format))")
        }
        let accountID = try c.hex(.accountID, bytes: 32)
        let issuer = try c.hex(.issuer, bytes: 32)
        let notBefore = try c.unsigned(.notBefore)
        let notAfter = try c.unsigned(.notAfter)
        let quota = try c.unsigned(.quotaBytes)
        let signed = try c.hex(.signed, limit: Self.maxSignedBytes)
        let pass: AccountPass
        do {
            pass = try AccountPass.decode(SignedEnvelope.decode(signed).payload)
        } catch {
            throw c.problem(.signed, "not a signed account pass (\(error))")
        }
        guard pass.accountID == accountID else { throw c.problem(.accountID, "differs from the signed pass") }
        guard pass.issuer == issuer else { throw c.problem(.issuer, "differs from the signed pass") }
        guard pass.notBefore == notBefore else { throw c.problem(.notBefore, "differs from the signed pass") }
        guard pass.notAfter == notAfter else { throw c.problem(.notAfter, "differs from the signed pass") }
        guard pass.quotaBytes == quota else { throw c.problem(.quotaBytes, "differs from the signed pass") }
        self.pass = pass
        self.signedBytes = signed
    }
}
