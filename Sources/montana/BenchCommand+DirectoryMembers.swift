import Dispatch
import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaWire

/// One synthetic but real member for the directory benchmarks: its own ML-DSA-65 identity and
/// X-Wing key, endorsed by the benchmark alliance's membership key, and the record it signs
/// (exactly the fields `NodeDirectory.signedRecord` writes: one T0 endpoint, an hour's lifetime).
struct BenchMember: Sendable {
    /// Assigned ISO 3166-1 codes the members claim, in turn.
    static let countries = ["DE", "NL", "FR", "SE", "ES", "IT", "FI", "PT", "IE", "PL", "AT", "CZ", "BE", "DK", "NO", "CH"]
    /// As many operator labels as a mid-sized alliance has (the endorsement names the label).
    static let operatorCount = 12
    /// `NodeDirectory.recordLifetime`.
    static let recordLifetime: UInt64 = 3600

    let index: Int
    let identity: IdentityKey
    let kemPublicKey: [UInt8]
    let country: String
    let roles: NodeRoles
    let host: String
    let operatorLabel: String
    /// The encoded SignedEnvelope of the alliance's endorsement (record field 12).
    let endorsement: [UInt8]

    var nodeID: NodeID { identity.nodeID }
    var isExit: Bool { roles.contains(.exit) }

    /// Member `index` of `alliance`; the first `exits` indices (spread by `isExitIndex`) are exits.
    init(index: Int, exit: Bool, alliance: AllianceDocument, secret: AllianceSecret, now: UInt64) throws {
        self.index = index
        identity = try IdentityKey.generate()
        kemPublicKey = try KEMKey.generate().publicKey
        country = Self.countries[index % Self.countries.count]
        roles = exit ? [.front, .exit] : [.front]
        host = Self.host(index)
        operatorLabel = "Operator \(index % Self.operatorCount)"
        endorsement = try EndorsementFile.make(endorsing: identity.nodeID, operator: operatorLabel, alliance: alliance,
                                               secret: secret, now: now).signedBytes
    }

    /// Its own IPv4 /16 per member (`AddressGroup` is the /16): 10.0.0.1, 10.1.0.1, … 11.0.0.1, …
    static func host(_ index: Int) -> String { "\(10 + index / 256).\(index % 256).0.1" }

    /// The record signed at `now` (window W(now), valid for `recordLifetime`).
    func signedRecord(now: UInt64) throws -> [UInt8] {
        let window = UInt32(truncatingIfNeeded: TimeWindow.window(unixSeconds: now))
        let entry = try EgressDirectoryEntry(exitNodeID: nodeID.bytes, countryCode: country, capacityClass: .standard,
                                             advertisedWindow: window)
        let record = DirectoryRecord(entry: entry, identityPublicKey: identity.publicKey, kemPublicKey: kemPublicKey, roles: roles,
                                     endpoints: [Endpoint(profile: 0, host: host, port: 443)], issuedAt: now,
                                     expiresAt: now + Self.recordLifetime, operatorLabel: operatorLabel, endorsement: endorsement)
        return try RecordSigner.sign(record, with: identity).encode()
    }

    /// An attestation by this member of `subject` as the attester signs it with GeoIP: session
    /// verified and egress geolocated, the located (here: claimed) country, the observed address.
    func attestation(of subject: BenchMember, now: UInt64) throws -> [UInt8] {
        let window = UInt32(truncatingIfNeeded: TimeWindow.window(unixSeconds: now))
        let a = Attestation(subject: subject.nodeID.bytes, countryCode: subject.country, window: window, attester: nodeID.bytes,
                            method: [.sessionVerified, .egressGeolocated], observedEgressIP: IPv4Bytes.of(subject.host))
        return try AttestationSigner.sign(a, with: identity).encode()
    }

    /// `count` members, keys made on every core (ML-DSA key generation and the endorsement's
    /// signature dominate). Exits are spread evenly: member i is an exit when
    /// ⌊(i+1)·exits/count⌋ > ⌊i·exits/count⌋.
    static func make(count: Int, exits: Int, alliance: AllianceDocument, secret: AllianceSecret, now: UInt64) throws -> [BenchMember] {
        try parallelMap(0..<count) { i in
            try BenchMember(index: i, exit: (i + 1) * exits / count > i * exits / count, alliance: alliance, secret: secret, now: now)
        }
    }
}

/// The four bytes of a dotted IPv4 literal (the hosts here are always well formed).
enum IPv4Bytes {
    static func of(_ host: String) -> [UInt8] {
        let parts = host.split(separator: ".").compactMap { UInt8($0) }
        return parts.count == 4 ? parts : [0, 0, 0, 0]
    }
}

/// `transform` over `range` on every core, results in order; the first error is rethrown.
func parallelMap<T: Sendable>(_ range: Range<Int>, _ transform: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    let results = LockedResults<T>(count: range.count)
    DispatchQueue.concurrentPerform(iterations: range.count) { offset in
        do { results.set(offset, try transform(range.lowerBound + offset)) } catch { results.fail(error) }
    }
    return try results.values()
}

/// Results written from `concurrentPerform` workers.
final class LockedResults<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T?]
    private var error: (any Error)?

    init(count: Int) { items = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ value: T) {
        lock.lock()
        items[i] = value
        lock.unlock()
    }

    func fail(_ e: any Error) {
        lock.lock()
        if error == nil { error = e }
        lock.unlock()
    }

    func values() throws -> [T] {
        lock.lock()
        defer { lock.unlock() }
        if let error { throw error }
        return items.compactMap { $0 }
    }
}

/// Human-readable sizes for the tables (binary units, as in docs/BENCHMARKS.md).
enum ByteText {
    static func of(_ n: Double) -> String {
        if n >= 1024 * 1024 * 1024 { return String(format: "%.2f GiB", n / 1024 / 1024 / 1024) }
        if n >= 1024 * 1024 { return String(format: "%.1f MiB", n / 1024 / 1024) }
        if n >= 1024 { return String(format: "%.1f KiB", n / 1024) }
        return String(format: "%.0f B", n)
    }

    static func of(_ n: Int) -> String { of(Double(n)) }
}
