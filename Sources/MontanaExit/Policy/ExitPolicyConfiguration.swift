/// The operator's exit policy settings (the `[exit]` section of the node config).
public struct ExitPolicyConfiguration: Equatable, Sendable {
    public var mode: ExitPolicyMode
    public var allow: [ExitPolicyEntry]
    public var deny: [ExitPolicyEntry]
    /// The PROTOCOL.md 7.3 denials (private, loopback, link-local, ... and port 25). Turning them
    /// off is for closed test networks only; prefer explicit `allow` entries.
    public var builtinDenials: Bool

    public init(mode: ExitPolicyMode = .defaultAllow, allow: [ExitPolicyEntry] = [], deny: [ExitPolicyEntry] = [],
                builtinDenials: Bool = true) {
        self.mode = mode
        self.allow = allow
        self.deny = deny
        self.builtinDenials = builtinDenials
    }

    /// Reads config text; errors name `<section>.allow`, `<section>.deny` or `<section>.mode`.
    public static func parse(allow: [String], deny: [String], mode: String,
                             section: String = "exit") throws(ExitPolicyConfigurationError) -> ExitPolicyConfiguration {
        guard let parsedMode = ExitPolicyMode(rawValue: mode) else {
            throw .invalidMode(field: "\(section).mode", value: mode)
        }
        return ExitPolicyConfiguration(mode: parsedMode,
                                       allow: try parseList(allow, field: "\(section).allow"),
                                       deny: try parseList(deny, field: "\(section).deny"))
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
