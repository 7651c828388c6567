import Foundation
import Logging

/// Parsers for the settings node and client files share.
enum SharedSettings {
    static let logKeys = ["level"]

    static func logLevel(_ root: ConfigSection) throws(ConfigurationError) -> Logger.Level {
        guard let log = try root.section("log") else { return .info }
        try log.allowOnly(logKeys)
        guard let text = try log.string("level") else { return .info }
        guard let level = Logger.Level(rawValue: text) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: "|")
            throw log.invalid("level", "\"\(text)\" is not a log level (\(names))")
        }
        return level
    }

    /// The alliance UUID carried in prefaces; an empty string means none.
    static func alliance(_ section: ConfigSection) throws(ConfigurationError) -> [UInt8]? {
        guard let text = try section.string("alliance"), !text.isEmpty else { return nil }
        // Accept the dashed UUID form too, since that is how UUIDs are usually written down.
        let digits = text.replacingOccurrences(of: "-", with: "")
        return try ConfigSection.hex(digits, bytes: 16, what: "an alliance UUID", error: { section.invalid("alliance", $0) })
    }
}
