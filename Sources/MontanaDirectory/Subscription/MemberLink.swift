import MontanaCrypto
import MontanaWire

/// One front of an alliance as a shareable text link (PROTOCOL.md section 10):
///
///     montana://<alliance uuid, 32 hex>@<host>:<port>?node=<64 hex>&kem=<base64url X-Wing pk>
///         &profile=t0&mode=universal#<label, percent-encoded>
///
/// `mode=own` adds the member's own T1 parameters: `t1pk=<64 hex>`, `sid=<hex>` (one per short
/// id, repeated), `sni=<server name>`, `cover=<host:port>`. IPv6 hosts are written in brackets.
/// Query values are percent-decoded; unknown query keys are ignored (so later versions can add
/// some), a known key given twice (other than `sid`) is an error. Parsing is bounded (≤ 4096
/// characters) and checks every part; errors name the part.
public struct MemberLink: Equatable, Sendable {
    public static let scheme = "montana"
    /// The whole link: the X-Wing key alone takes 1622 characters; an own-key link with 16 short
    /// ids and long names stays under 2400. 4096 leaves room and bounds the parser's work.
    public static let maxLength = 4096
    /// As a record's operator label: 64 bytes of UTF-8.
    public static let maxLabelBytes = 64
    /// A DNS name is at most 253 bytes.
    public static let maxHostBytes = 253
    /// As `UniversalT1`: at most 16 short ids of at most 8 bytes.
    public static let maxShortIDs = 16
    public static let maxShortIDBytes = 8
    /// `cover` is a host or `host:port`: at most 255 bytes.
    public static let maxCoverBytes = 255

    /// The alliance UUID, 16 bytes.
    public var alliance: [UInt8]
    /// A DNS name or an address literal (IPv6 without brackets).
    public var host: String
    public var port: UInt16
    public var nodeID: NodeID
    /// X-Wing public key, 1216 bytes.
    public var kemPublicKey: [UInt8]
    /// Carrier ladder index 0...4 (`t0`...`t4`).
    public var profile: UInt8
    public var keyMode: KeyMode
    /// Required when `keyMode == .own`, absent otherwise.
    public var ownT1: T1Params?
    /// Shown to users; ≤ 64 bytes, no control characters. An empty label is no label.
    public var label: String?

    public init(alliance: [UInt8], host: String, port: UInt16, nodeID: NodeID, kemPublicKey: [UInt8], profile: UInt8 = 0,
                keyMode: KeyMode = .universal, ownT1: T1Params? = nil, label: String? = nil) {
        self.alliance = alliance
        self.host = host
        self.port = port
        self.nodeID = nodeID
        self.kemPublicKey = kemPublicKey
        self.profile = profile
        self.keyMode = keyMode
        self.ownT1 = ownT1
        self.label = label?.isEmpty == true ? nil : label
    }

    /// The front's endpoint as a record names it.
    public var endpoint: Endpoint { Endpoint(profile: profile, host: host, port: port) }

    /// The link text. Values are percent-encoded, so any field round-trips through `parse`.
    public var text: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        var query = [
            "node=\(nodeID.hex)",
            "kem=\(LinkText.base64URLEncode(kemPublicKey))",
            "profile=t\(profile)",
            "mode=\(keyMode == .own ? "own" : "universal")",
        ]
        if keyMode == .own, let t1 = ownT1 {
            query.append("t1pk=\(Hex.encode(t1.x25519PublicKey))")
            for sid in t1.shortIDs { query.append("sid=\(Hex.encode(sid))") }
            query.append("sni=\(LinkText.percentEncode(t1.serverName))")
            query.append("cover=\(LinkText.percentEncode(t1.cover))")
        }
        var text = "\(Self.scheme)://\(Hex.encode(alliance))@\(hostText):\(port)?" + query.joined(separator: "&")
        if let label, !label.isEmpty { text += "#" + LinkText.percentEncode(label) }
        return text
    }

    /// Parses and checks a link (surrounding whitespace is ignored).
    public static func parse(_ input: String) throws(MemberLinkError) -> MemberLink {
        guard input.utf8.count <= maxLength else { throw .tooLong(length: input.utf8.count, limit: maxLength) }
        let text = input.trimmingBlanks()
        let prefix = "\(scheme)://"
        guard text.utf8.count > prefix.utf8.count, text.prefix(prefix.count).lowercased() == prefix else { throw .notAMemberLink }
        var rest = Substring(text.dropFirst(prefix.count))

        var label: String?
        if let hash = rest.firstIndex(of: "#") {
            let fragment = rest[rest.index(after: hash)...]
            rest = rest[..<hash]
            guard let decoded = LinkText.percentDecode(fragment) else { throw .invalid("label", problem: "bad percent-encoding or not UTF-8") }
            if !decoded.isEmpty {
                try checkText(decoded, part: "label", limit: maxLabelBytes)
                label = decoded
            }
        }
        guard let question = rest.firstIndex(of: "?") else { throw .missing("node") }
        let query = rest[rest.index(after: question)...]
        var authority = rest[..<question]
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard !authority.contains("/") else { throw .invalid("path", problem: "a member link has no path") }

        guard let at = authority.lastIndex(of: "@") else { throw .missing("alliance") }
        let alliance = try parseUUID(authority[..<at])
        let (host, port) = try parseHostPort(authority[authority.index(after: at)...])

        var values: [String: String] = [:]
        var shortIDs: [[UInt8]] = []
        let known: Set<String> = ["node", "kem", "profile", "mode", "t1pk", "sni", "cover"]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            guard let value = LinkText.percentDecode(parts.count == 2 ? parts[1] : "") else {
                throw .invalid(Printable.quote(key, limit: 16), problem: "bad percent-encoding or not UTF-8")
            }
            if key == "sid" {
                guard shortIDs.count < maxShortIDs else { throw .invalid("sid", problem: "more than \(maxShortIDs) short ids") }
                guard let sid = Hex.decode(value), sid.count <= maxShortIDBytes else {
                    throw .invalid("sid", problem: "must be hex of at most \(maxShortIDBytes) bytes")
                }
                shortIDs.append(sid)
            } else if known.contains(key) {
                guard values[key] == nil else { throw .invalid(key, problem: "given twice") }
                values[key] = value
            }
        }

        guard let nodeText = values["node"] else { throw .missing("node") }
        guard let nodeID = NodeID(hex: nodeText) else { throw .invalid("node", problem: "must be 64 hex digits (a 32-byte node id)") }
        guard let kemText = values["kem"] else { throw .missing("kem") }
        guard let kem = LinkText.base64URLDecode(kemText) else { throw .invalid("kem", problem: "not unpadded base64url") }
        guard kem.count == KEMKey.publicKeySize else {
            throw .invalid("kem", problem: "is \(kem.count) bytes, an X-Wing public key is \(KEMKey.publicKeySize)")
        }
        let profile = try parseProfile(values["profile"] ?? "t0")

        let ownOnly = ["t1pk", "sni", "cover"].filter { values[$0] != nil } + (shortIDs.isEmpty ? [] : ["sid"])
        var keyMode = KeyMode.universal
        var ownT1: T1Params?
        switch values["mode"] ?? "universal" {
        case "universal":
            if let first = ownOnly.first { throw .invalid(first, problem: "only allowed with mode=own") }
        case "own":
            keyMode = .own
            guard let pkText = values["t1pk"] else { throw .missing("t1pk (mode=own)") }
            guard let pk = Hex.decode(pkText), pk.count == 32 else { throw .invalid("t1pk", problem: "must be 64 hex digits (an X25519 public key)") }
            let sni = values["sni"] ?? ""
            if !sni.isEmpty, let problem = hostProblem(sni) { throw .invalid("sni", problem: problem) }
            let cover = values["cover"] ?? ""
            try checkText(cover, part: "cover", limit: maxCoverBytes)
            guard !cover.contains(" ") else { throw .invalid("cover", problem: "contains a space") }
            ownT1 = T1Params(x25519PublicKey: pk, shortIDs: shortIDs, serverName: sni, cover: cover)
        case let other:
            throw .invalid("mode", problem: "\(Printable.quote(other, limit: 16)) is neither universal nor own")
        }
        return MemberLink(alliance: alliance, host: host, port: port, nodeID: nodeID, kemPublicKey: kem, profile: profile,
                          keyMode: keyMode, ownT1: ownT1, label: label)
    }

    // MARK: - Parts

    private static func parseUUID(_ text: Substring) throws(MemberLinkError) -> [UInt8] {
        guard !text.isEmpty else { throw .missing("alliance") }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let plain = parts.joined()
        guard parts.count == 1 || parts.map(\.count) == [8, 4, 4, 4, 12], plain.utf8.count == 32,
              let bytes = Hex.decode(plain), bytes.count == 16 else {
            throw .invalid("alliance", problem: "must be the alliance UUID: 32 hex digits")
        }
        return bytes
    }

    private static func parseHostPort(_ text: Substring) throws(MemberLinkError) -> (String, UInt16) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .invalid("host", problem: "unclosed [") }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            guard after.hasPrefix(":") else { throw .missing("port") }
            portText = after.dropFirst()
            guard let address = IPLiteral.parse(String(host)), address.count == 16 else {
                throw .invalid("host", problem: "\(Printable.quote(host, limit: 48)) in brackets is not an IPv6 address")
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .missing("port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { throw .invalid("host", problem: "an IPv6 address must be written in brackets") }
            guard !host.isEmpty else { throw .missing("host") }
            if let problem = hostProblem(String(host)) { throw .invalid("host", problem: problem) }
        }
        guard (1...5).contains(portText.utf8.count), portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let port = Int(portText), let value = UInt16(exactly: port), value >= 1 else {
            throw .invalid("port", problem: "must be a number 1...65535")
        }
        return (String(host), value)
    }

    private static func parseProfile(_ text: String) throws(MemberLinkError) -> UInt8 {
        let bytes = Array(text.utf8)
        guard bytes.count == 2, bytes[0] == UInt8(ascii: "t"), (UInt8(ascii: "0")...UInt8(ascii: "4")).contains(bytes[1]) else {
            throw .invalid("profile", problem: "must be t0...t4")
        }
        return bytes[1] - UInt8(ascii: "0")
    }

    /// Why `host` is not a usable DNS name or IPv4 literal (nil: it is). Letters, digits, `.`, `-`
    /// and `_`, at most 253 bytes.
    static func hostProblem(_ host: String) -> String? {
        guard !host.isEmpty, host.utf8.count <= maxHostBytes else { return "must be 1...\(maxHostBytes) bytes" }
        let ok = host.utf8.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
                || c == UInt8(ascii: "_")
        }
        return ok ? nil : "\(Printable.quote(host, limit: 48)) is not a host name or address"
    }

    private static func checkText(_ text: String, part: String, limit: Int) throws(MemberLinkError) {
        guard text.utf8.count <= limit else { throw .invalid(part, problem: "is \(text.utf8.count) bytes, limit \(limit)") }
        guard !text.unicodeScalars.contains(where: Printable.isControl) else { throw .invalid(part, problem: "contains a control character") }
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and line breaks (links pasted from mail or chat).
    func trimmingBlanks() -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !blank($0) }), let last = lastIndex(where: { !blank($0) }) else { return "" }
        return String(self[first...last])
    }
}
