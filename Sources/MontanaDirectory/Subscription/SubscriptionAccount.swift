import MontanaCrypto
import MontanaWire

/// The account a subscription hands its users: a pass for an account the user holds the key of,
/// or a bearer account (everyone with the document shares the seed, and so the account), or both
/// (a bearer account with its pass). JSON `{"pass": PassFile | null, "bearer_seed": hex | null}`;
/// at least one is set.
public struct SubscriptionAccount: Codable, Sendable, Equatable {
    public var pass: PassFile?
    /// The 32-byte ML-DSA-65 seed of the shared account. Secret: a document holding it is
    /// written with mode 0600.
    public var bearerSeed: [UInt8]?

    public init(pass: PassFile? = nil, bearerSeed: [UInt8]? = nil) {
        self.pass = pass
        self.bearerSeed = bearerSeed
    }

    /// The bearer account's key, if there is one.
    public func bearerAccount() throws -> IdentityKey? {
        try bearerSeed.map { try IdentityKey(seed: $0) }
    }

    enum CodingKeys: String, CodingKey {
        case pass
        case bearerSeed = "bearer_seed"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let pass { try c.encode(pass, forKey: .pass) } else { try c.encodeNil(forKey: .pass) }
        if let bearerSeed { try c.encode(Hex.encode(bearerSeed), forKey: .bearerSeed) } else { try c.encodeNil(forKey: .bearerSeed) }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pass = try c.decodeIfPresent(PassFile.self, forKey: .pass)
        if try c.contains(.bearerSeed) && !c.decodeNil(forKey: .bearerSeed) {
            let seed = try c.hex(.bearerSeed, bytes: 32)
            guard let key = try? IdentityKey(seed: seed) else { throw c.problem(.bearerSeed, "not a valid ML-DSA-65 seed") }
            if let pass, !ConstantTime.equal(pass.accountID, key.accountID) {
                throw c.problem(.pass, "is for account \(Hex.encode(pass.accountID.prefix(6)))…, not the bearer account")
            }
            bearerSeed = seed
        } else {
            bearerSeed = nil
        }
        guard pass != nil || bearerSeed != nil else { throw c.problem(.pass, "an account needs a pass or a bearer_seed (or use \"account\": null)") }
    }
}

/// Where and how often clients refresh the document: JSON `{"url": "http://..." | null,
/// "interval_hours": 12}`. Without a URL a client refreshes from wherever it fetched the document.
public struct SubscriptionUpdate: Codable, Sendable, Equatable {
    /// 1...720 hours (30 days): more often than hourly only loads the server; less often than
    /// monthly leaves users with dead fronts.
    public static let intervalHours: ClosedRange<Int> = 1...720
    public static let defaultIntervalHours = 12
    /// URLs of at most 2048 bytes.
    public static let maxURLBytes = 2048

    public var url: String?
    public var intervalHours: Int

    public init(url: String? = nil, intervalHours: Int = defaultIntervalHours) {
        self.url = url
        self.intervalHours = intervalHours
    }

    /// The path part of `url` (`/sub` for `http://h/sub?x=1`), or nil without a URL.
    public var path: String? {
        guard let url, let scheme = url.range(of: "://") else { return nil }
        let afterScheme = url[scheme.upperBound...]
        guard let slash = afterScheme.firstIndex(of: "/") else { return "/" }
        let pathAndQuery = afterScheme[slash...]
        return String(pathAndQuery.prefix { $0 != "?" && $0 != "#" })
    }

    enum CodingKeys: String, CodingKey {
        case url
        case intervalHours = "interval_hours"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let url { try c.encode(url, forKey: .url) } else { try c.encodeNil(forKey: .url) }
        try c.encode(intervalHours, forKey: .intervalHours)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let url = try c.decodeIfPresent(String.self, forKey: .url)
        if let url, let problem = Self.urlProblem(url) { throw c.problem(.url, problem) }
        let hours = try c.integer(.intervalHours, in: Self.intervalHours)
        self.url = url
        self.intervalHours = hours
    }

    /// Why `url` is not an update URL (nil: it is): `http://` or `https://` with a host, at most
    /// 2048 bytes, printable ASCII.
    public static func urlProblem(_ url: String) -> String? {
        guard url.utf8.count <= maxURLBytes else { return "is \(url.utf8.count) bytes, limit \(maxURLBytes)" }
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return "must be printable ASCII without spaces" }
        let lower = url.lowercased()
        guard let rest = ["http://", "https://"].first(where: { lower.hasPrefix($0) }).map({ url.dropFirst($0.count) }) else {
            return "must start with http:// or https://"
        }
        let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !host.isEmpty, !host.hasPrefix(":") else { return "has no host" }
        return nil
    }
}
