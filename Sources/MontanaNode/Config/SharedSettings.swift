import Foundation
import Logging
import MontanaDirectory

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

    /// 32 hex digits, dashed or not: the UUID itself rather than a path to alliance.json.
    static func looksLikeUUID(_ text: String) -> Bool {
        let digits = text.replacingOccurrences(of: "-", with: "")
        return digits.utf8.count == 32 && digits.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }
    }

    /// The alliance UUID carried in prefaces; an empty string means none. The key holds either
    /// the path of the alliance's `alliance.json` (the usual form) or the bare UUID.
    static func alliance(_ section: ConfigSection) throws(ConfigurationError) -> [UInt8]? {
        guard let text = try section.string("alliance"), !text.isEmpty else { return nil }
        if !looksLikeUUID(text) {
            do { return try AllianceDocument.load(path: section.resolve(text)).uuidBytes } catch { throw section.invalid("alliance", "\(error)") }
        }
        // Accept the dashed UUID form too, since that is how UUIDs are usually written down.
        let digits = text.replacingOccurrences(of: "-", with: "")
        return try ConfigSection.hex(digits, bytes: 16, what: "an alliance UUID", error: { section.invalid("alliance", $0) })
    }
}
