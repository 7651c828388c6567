import MontanaCrypto
import MontanaWire

/// The subscription document (PROTOCOL.md section 10): everything a client needs to join an
/// alliance, and where to refresh it.
///
///     {"format":"montana-subscription-v1","title":"...","issued_at":unix,
///      "alliance":{AllianceDocument},
///      "bootstrap":[BootstrapFront, ...],
///      "account":{"pass":PassFile|null,"bearer_seed":hex|null} | null,
///      "update":{"url":"http://..."|null,"interval_hours":12}}
///
/// It holds only public alliance material (`AllianceDocument`, never `AllianceSecret`). Decoding
/// validates everything and cross-checks it: the alliance file's fields, every link against its
/// front's fields and the alliance UUID, and the pass against the alliance's pass issuers.
public struct SubscriptionDocument: Codable, Sendable, Equatable {
    public static let currentFormat = "montana-subscription-v1"
    /// 1 MiB: 64 fronts with 16 endpoints each and a pass come to about 300 KB.
    public static let maxBytes = 1 << 20
    /// Titles are shown in client lists: 1...128 bytes of UTF-8 without control characters.
    public static let maxTitleBytes = 128
    /// At most 64 bootstrap fronts: clients try them all; more only slows the first connection.
    public static let maxBootstrap = 64

    public var title: String
    public var issuedAt: UInt64
    public var alliance: AllianceDocument
    public var bootstrap: [BootstrapFront]
    public var account: SubscriptionAccount?
    public var update: SubscriptionUpdate

    /// Builds a document without checking it; `create` and `decode` check.
    public init(title: String, issuedAt: UInt64, alliance: AllianceDocument, bootstrap: [BootstrapFront],
                account: SubscriptionAccount?, update: SubscriptionUpdate) {
        self.title = title
        self.issuedAt = issuedAt
        self.alliance = alliance
        self.bootstrap = bootstrap
        self.account = account
        self.update = update
    }

    /// A checked new document. Links of the same node become one front with several endpoints;
    /// `title` defaults to the alliance's name.
    public static func create(alliance: AllianceDocument, links: [MemberLink], title: String? = nil,
                              account: SubscriptionAccount? = nil, update: SubscriptionUpdate = SubscriptionUpdate(),
                              now: UInt64) throws(SubscriptionFileError) -> SubscriptionDocument {
        let doc = SubscriptionDocument(title: title ?? alliance.name, issuedAt: now, alliance: alliance,
                                       bootstrap: BootstrapFront.grouping(links), account: account, update: update)
        // One set of checks: the new document must decode as a client would decode it.
        return try decode(doc.encoded(), source: "(new subscription)")
    }

    /// Every front's link (first link per front).
    public var links: [MemberLink] { bootstrap.map(\.link) }

    /// True if the document holds a bearer account seed (and so is secret).
    public var holdsSecret: Bool { account?.bearerSeed != nil }

    public static func load(path: String) throws(SubscriptionFileError) -> SubscriptionDocument {
        try decode(readBytes(path: path), source: path)
    }

    /// The file's bytes, undecoded: at most 1 MiB from a regular file (the server serves them as
    /// they are, after `decode` accepted them).
    public static func readBytes(path: String) throws(SubscriptionFileError) -> [UInt8] {
        try SubscriptionJSON.read(path, limit: maxBytes)
    }

    /// Decodes and validates at most 1 MiB; `source` (a path or URL) names the document in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws(SubscriptionFileError) -> SubscriptionDocument {
        try SubscriptionJSON.decode(SubscriptionDocument.self, from: bytes, file: source, limit: maxBytes)
    }

    /// Pretty, sorted-key JSON with a final newline.
    public func encoded() -> [UInt8] { SubscriptionJSON.encode(self) }

    /// Writes atomically: mode 0600 when the document holds a bearer seed, else 0644.
    public func write(to path: String) throws {
        try SubscriptionJSON.writeAtomically(encoded(), to: path, mode: holdsSecret ? 0o600 : 0o644)
    }

    // MARK: - Codable

    enum CodingKeys: String, CodingKey {
        case format, title, alliance, bootstrap, account, update
        case issuedAt = "issued_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.currentFormat, forKey: .format)
        try c.encode(title, forKey: .title)
        try c.encode(issuedAt, forKey: .issuedAt)
        try c.encode(alliance, forKey: .alliance)
        try c.encode(bootstrap, forKey: .bootstrap)
        if let account { try c.encode(account, forKey: .account) } else { try c.encodeNil(forKey: .account) }
        try c.encode(update, forKey: .update)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        guard format == Self.currentFormat else {
            throw c.problem(.format, "must be \"\(Self.currentFormat)\", found \(Printable.quote(format))")
        }
        title = try c.text(.title, bytes: 1...Self.maxTitleBytes)
        issuedAt = try c.unsigned(.issuedAt)

        var alliance = try c.decode(AllianceDocument.self, forKey: .alliance)
        do {
            try alliance.validate(file: "alliance")
        } catch {
            let key: String
            let problem: String
            switch error {
            case .invalid(_, let k, let p): key = k; problem = p
            default: key = "(file)"; problem = "\(error)"
            }
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.alliance, NamedKey(key)], debugDescription: problem))
        }
        self.alliance = alliance

        bootstrap = try c.decode([BootstrapFront].self, forKey: .bootstrap)
        guard !bootstrap.isEmpty else { throw c.problem(.bootstrap, "lists no front; a client could not connect") }
        guard bootstrap.count <= Self.maxBootstrap else { throw c.problem(.bootstrap, "has \(bootstrap.count) fronts, limit \(Self.maxBootstrap)") }
        for (i, front) in bootstrap.enumerated() {
            let key = [CodingKeys.bootstrap, NamedKey("[\(i)].link")] as [any CodingKey]
            guard front.link.alliance == alliance.uuidBytes else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + key,
                    debugDescription: "names alliance \(Hex.encode(front.link.alliance)), not this alliance (\(alliance.uuid))"))
            }
            guard !bootstrap[..<i].contains(where: { $0.nodeID == front.nodeID }) else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + key, debugDescription: "node \(front.nodeID.short) is listed twice"))
            }
        }

        account = try c.decodeIfPresent(SubscriptionAccount.self, forKey: .account)
        if let pass = account?.pass, !pass.isSigned(byOneOf: alliance.passIssuerKeys) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.account, NamedKey("pass.signed")],
                debugDescription: "not signed by one of the alliance's pass_issuers"))
        }
        update = try c.decode(SubscriptionUpdate.self, forKey: .update)
    }
}
