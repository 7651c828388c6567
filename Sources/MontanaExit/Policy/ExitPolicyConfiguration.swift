/// The operator's exit policy settings (the `[exit]` section of the node config).
public struct ExitPolicyConfiguration: Equatable, Sendable {
    public var mode: ExitPolicyMode
    public var allow: [ExitPolicyEntry]
    public var deny: [ExitPolicyEntry]
    /// The only way to re-open a built-in denial or one of the exit's own addresses: networks
    /// and port ranges (no host names), e.g. `["127.0.0.0/8"]` in the demo so its local site
    /// works. An `allow` entry never re-opens them, however broad. It lifts denials only: in
    /// default-deny mode the destination must also match `allow`.
    public var allowPrivate: [ExitPolicyEntry]
    /// The PROTOCOL.md 7.3 denials (private, loopback, link-local, ... and port 25). Turning them
    /// off is for closed test networks only; prefer explicit `allow_private` entries.
    public var builtinDenials: Bool

    public init(mode: ExitPolicyMode = .defaultAllow, allow: [ExitPolicyEntry] = [], deny: [ExitPolicyEntry] = [],
                allowPrivate: [ExitPolicyEntry] = [], builtinDenials: Bool = true) {
        self.mode = mode
        self.allow = allow
        self.deny = deny
        self.allowPrivate = allowPrivate
        self.builtinDenials = builtinDenials
    }

    /// Reads config text; errors name `<section>.allow`, `<section>.deny`, `<section>.allow_private`
    /// or `<section>.mode`.
    public static func parse(allow: [String], deny: [String], allowPrivate: [String] = [], mode: String,
                             section: String = "exit") throws(ExitPolicyConfigurationError) -> ExitPolicyConfiguration {
        guard let parsedMode = ExitPolicyMode(rawValue: mode) else {
            throw .invalidMode(field: "\(section).mode", value: mode)
        }
        let privateEntries = try parseList(allowPrivate, field: "\(section).allow_private")
        for (text, entry) in zip(allowPrivate, privateEntries) {
            if case .hostSuffix = entry {
                throw .invalidEntry(field: "\(section).allow_private", entry: text, problem: .hostSuffixCannotReopen)
            }
        }
        return ExitPolicyConfiguration(mode: parsedMode,
                                       allow: try parseList(allow, field: "\(section).allow"),
                                       deny: try parseList(deny, field: "\(section).deny"),
                                       allowPrivate: privateEntries)
    }

    private static func parseList(_ texts: [String], field: String) throws(ExitPolicyConfigurationError) -> [ExitPolicyEntry] {
        var entries: [ExitPolicyEntry] = []
        for text in texts {
            do {
                entries.append(try ExitPolicyEntry.parse(text))
            } catch {
                throw .invalidEntry(field: field, entry: text, problem: error)
            }
        }
        return entries
    }
}
