import Foundation
import MontanaCrypto
import MontanaExit
import NIOCore

/// The `[exit]` section, resolved: who may use the exit and where traffic may go.
public struct ExitSettings: Sendable {
    public var admission: Admission
    public var policy: ExitPolicyConfiguration
    /// `egress_source`: local addresses egress connections are bound to (one per family).
    public var egressSource = EgressSource()

    public init(admission: Admission = .anyAccount, policy: ExitPolicyConfiguration = ExitPolicyConfiguration()) {
        self.admission = admission
        self.policy = policy
    }

    static let keys = ["admission", "allow_accounts", "pass_issuers", "policy", "allow", "deny", "allow_private", "egress_source"]

    /// `allianceIssuers`: the pass issuers of the node's alliance.json, trusted when `pass_issuers` is not set.
    static func parse(_ s: ConfigSection?, allianceIssuers: [[UInt8]] = [], warnings: inout [String]) throws(ConfigurationError) -> ExitSettings {
        guard let s else { return ExitSettings() }
        try s.allowOnly(keys)
        let accounts = try accountIDs(s)
        var issuers = try passIssuers(s)
        if issuers.isEmpty { issuers = allianceIssuers }
        let admission: Admission
        switch try s.string("admission") ?? "any-account" {
        case "any-account":
            if !accounts.isEmpty || !issuers.isEmpty {
                warnings.append("\(s.file): \(s.key("admission")) is \"any-account\", so allow_accounts and pass_issuers are ignored")
            }
            admission = .anyAccount
        case "allow-list":
            guard !accounts.isEmpty else { throw s.invalid("allow_accounts", "empty, so admission \"allow-list\" would admit no one") }
            admission = .allowList(accounts)
        case "pass":
            guard !issuers.isEmpty else { throw s.invalid("pass_issuers", "empty and node.alliance names no alliance.json with pass issuers, so admission \"pass\" would admit only allow_accounts") }
            admission = .pass(issuers: issuers, allowList: accounts)
        case let other:
            throw s.invalid("admission", "\"\(other)\" is not one of any-account, allow-list, pass")
        }
        let allow = try s.strings("allow") ?? []
        let deny = try s.strings("deny") ?? []
        // Networks and ports that re-open built-in denials and the exit's own addresses; a broad
        // `allow` never does.
        let allowPrivate = try s.strings("allow_private") ?? []
        let mode = try s.string("policy") ?? "default-allow"
        let source = try egressSource(s)
        do {
            let policy = try ExitPolicyConfiguration.parse(allow: allow, deny: deny, allowPrivate: allowPrivate,
                                                           mode: mode, section: s.path)
            var settings = ExitSettings(admission: admission, policy: policy)
            settings.egressSource = source
            return settings
        } catch {
            throw policyError(error, s: s, lists: ["allow": allow, "deny": deny, "allow_private": allowPrivate])
        }
    }

    static func egressSource(_ s: ConfigSection) throws(ConfigurationError) -> EgressSource {
        var source = EgressSource()
        for text in try s.strings("egress_source") ?? [] {
            guard let address = try? SocketAddress(ipAddress: text, port: 0) else {
                throw s.invalid("egress_source", "\"\(text)\" is not an IP address literal")
            }
            if address.protocol == .inet6 {
                guard source.ipv6 == nil else { throw s.invalid("egress_source", "two IPv6 addresses; give at most one per family") }
                source.ipv6 = address
            } else {
                guard source.ipv4 == nil else { throw s.invalid("egress_source", "two IPv4 addresses; give at most one per family") }
                source.ipv4 = address
            }
        }
        return source
    }

    /// Re-points an exit policy error from the list (`exit.allow`) to the entry (`exit.allow[2]`).
    private static func policyError(_ error: ExitPolicyConfigurationError, s: ConfigSection,
                                    lists: [String: [String]]) -> ConfigurationError {
        switch error {
        case .invalidMode(_, let value):
            return s.invalid("policy", "\"\(value)\" is not one of default-allow, default-deny")
        case .invalidEntry(let field, let entry, let problem):
            let list = field.split(separator: ".").last.map(String.init) ?? "allow"
            // parse stops at the first bad entry, so the first equal string is the one.
            let index = lists[list]?.firstIndex(of: entry) ?? 0
            return .invalidValue(file: s.file, key: "\(s.key(list))[\(index)]", problem: "\"\(entry)\": \(problem)")
        }
    }

    private static func accountIDs(_ s: ConfigSection) throws(ConfigurationError) -> Set<[UInt8]> {
        var out = Set<[UInt8]>()
        for (i, text) in (try s.strings("allow_accounts") ?? []).enumerated() {
            let key = "\(s.key("allow_accounts"))[\(i)]"
            out.insert(try ConfigSection.hex(text, bytes: 32, what: "an account id",
                                             error: { .invalidValue(file: s.file, key: key, problem: $0) }))
        }
        return out
    }

    /// Each issuer is an ML-DSA-65 public key in hex, or a path to a `*.pub.json` holding `identity_pk`.
    private static func passIssuers(_ s: ConfigSection) throws(ConfigurationError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for (i, text) in (try s.strings("pass_issuers") ?? []).enumerated() {
            let key = "\(s.key("pass_issuers"))[\(i)]"
            let fail = { (problem: String) in ConfigurationError.invalidValue(file: s.file, key: key, problem: problem) }
            let hexDigits = IdentityKey.publicKeySize * 2
            if text.utf8.count == hexDigits {
                out.append(try ConfigSection.hex(text, bytes: IdentityKey.publicKeySize, what: "an ML-DSA-65 public key", error: fail))
                continue
            }
            guard text.hasSuffix(".json") else {
                throw fail("expected \(hexDigits) hex digits (an ML-DSA-65 public key) or a path to a *.pub.json file, found \"\(text.prefix(16))\"")
            }
            let path = s.resolve(text)
            guard let data = FileManager.default.contents(atPath: path) else { throw fail("\(path): cannot read") }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let pk = object["identity_pk"] as? String else {
                throw fail("\(path): not a public key file (no \"identity_pk\")")
            }
            out.append(try ConfigSection.hex(pk, bytes: IdentityKey.publicKeySize, what: "an ML-DSA-65 public key",
                                             error: { fail("\(path): identity_pk: \($0)") }))
        }
        return out
    }
}
