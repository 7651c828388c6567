import Foundation
import MontanaWire
import TOMLKit

/// One TOML table of a config file with its dotted path, so every accessor can name the exact
/// key in its error. Sections list their keys up front; anything else is an unknown key.
struct ConfigSection {
    let file: String
    let path: String
    let table: TOMLTable
    /// Directory that relative paths in this file resolve against.
    let baseDirectory: String

    /// Reads and parses a config file.
    static func load(path: String) throws(ConfigurationError) -> ConfigSection {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied or not a file" : "no such file"
            throw .unreadable(file: path, reason: reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .unreadable(file: path, reason: "not UTF-8 text")
        }
        let directory = (path as NSString).deletingLastPathComponent
        return try parse(text, file: path, baseDirectory: directory.isEmpty ? "." : directory)
    }

    static func parse(_ text: String, file: String, baseDirectory: String) throws(ConfigurationError) -> ConfigSection {
        do {
            return ConfigSection(file: file, path: "", table: try TOMLTable(string: text), baseDirectory: baseDirectory)
        } catch let error as TOMLParseError {
            throw .syntax(file: file, line: error.source.begin.line, column: error.source.begin.column, message: error.description)
        } catch {
            throw .syntax(file: file, line: 0, column: 0, message: "\(error)")
        }
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func invalid(_ name: String, _ problem: String) -> ConfigurationError {
        .invalidValue(file: file, key: key(name), problem: problem)
    }

    func contains(_ name: String) -> Bool { table.contains(key: name) }

    /// Rejects keys outside `allowed`, suggesting the closest allowed one.
    func allowOnly(_ allowed: [String]) throws(ConfigurationError) {
        for name in table.keys where !allowed.contains(name) {
            let suggestion = KeySuggestion.closest(to: name, among: allowed).map(key)
            throw .unknownKey(file: file, key: key(name), suggestion: suggestion)
        }
    }

    private func value(_ name: String) -> (any TOMLValueConvertible)? { table[name] }

    private func wrongType(_ name: String, expected: String, _ found: any TOMLValueConvertible) -> ConfigurationError {
        .wrongType(file: file, key: key(name), expected: expected, found: Self.article(found.type))
    }

    static func article(_ type: TOMLType) -> String {
        switch type {
        case .int: return "an integer"
        case .array: return "an array"
        default: return "a \(type)"
        }
    }

    // MARK: scalars

    func string(_ name: String) throws(ConfigurationError) -> String? {
        guard let v = value(name) else { return nil }
        guard let s = v.string else { throw wrongType(name, expected: "a string", v) }
        return s
    }

    func requiredString(_ name: String) throws(ConfigurationError) -> String {
        guard let s = try string(name) else { throw .missingKey(file: file, key: key(name)) }
        return s
    }

    func int(_ name: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let v = value(name) else { return nil }
        guard let n = v.int else { throw wrongType(name, expected: "an integer", v) }
        guard range.contains(n) else { throw invalid(name, "\(n) is out of range (\(range.lowerBound)-\(range.upperBound))") }
        return n
    }

    func bool(_ name: String) throws(ConfigurationError) -> Bool? {
        guard let v = value(name) else { return nil }
        guard let b = v.bool else { throw wrongType(name, expected: "true or false", v) }
        return b
    }

    /// An array of strings; a wrong element is named by its index.
    func strings(_ name: String) throws(ConfigurationError) -> [String]? {
        guard let v = value(name) else { return nil }
        guard let array = v.array else { throw wrongType(name, expected: "an array of strings", v) }
        var out: [String] = []
        for (i, element) in array.enumerated() {
            guard let s = element.string else {
                throw .wrongType(file: file, key: "\(key(name))[\(i)]", expected: "a string", found: Self.article(element.type))
            }
            out.append(s)
        }
        return out
    }

    // MARK: tables

    func section(_ name: String) throws(ConfigurationError) -> ConfigSection? {
        guard let v = value(name) else { return nil }
        guard let t = v.table else { throw wrongType(name, expected: "a table ([\(key(name))])", v) }
        return ConfigSection(file: file, path: key(name), table: t, baseDirectory: baseDirectory)
    }

    /// An array of tables (`[[name]]`); each section's path carries its index.
    func sections(_ name: String) throws(ConfigurationError) -> [ConfigSection] {
        guard let v = value(name) else { return [] }
        guard let array = v.array else { throw wrongType(name, expected: "an array of tables ([[\(key(name))]])", v) }
        var out: [ConfigSection] = []
        for (i, element) in array.enumerated() {
            let elementKey = "\(key(name))[\(i)]"
            guard let t = element.table else {
                throw .wrongType(file: file, key: elementKey, expected: "a table", found: Self.article(element.type))
            }
            out.append(ConfigSection(file: file, path: elementKey, table: t, baseDirectory: baseDirectory))
        }
        return out
    }

    // MARK: typed values shared by both config files

    func hostPort(_ name: String) throws(ConfigurationError) -> HostPort? {
        guard let text = try string(name) else { return nil }
        do {
            return try HostPort(parsing: text)
        } catch {
            throw invalid(name, "\"\(text)\" is not host:port (\(error))")
        }
    }

    /// Exactly `count` bytes of hex; `what` names the thing for the message.
    func hex(_ name: String, bytes count: Int, what: String) throws(ConfigurationError) -> [UInt8]? {
        guard let text = try string(name) else { return nil }
        return try Self.hex(text, bytes: count, what: what) { problem in invalid(name, problem) }
    }

    static func hex(_ text: String, bytes count: Int, what: String,
                    error: (String) -> ConfigurationError) throws(ConfigurationError) -> [UInt8] {
        guard text.utf8.count == count * 2 else {
            throw error("expected \(count * 2) hex digits (\(what), \(count) bytes), found \(text.utf8.count) characters")
        }
        guard let bytes = Hex.decode(text) else { throw error("not hex: only 0-9 and a-f are allowed") }
        return bytes
    }

    func country(_ name: String) throws(ConfigurationError) -> String? {
        guard let code = try string(name) else { return nil }
        guard CountryCode.isAssigned(code) else {
            let hint = CountryCode.isAssigned(code.uppercased()) ? " (write it upper-case: \"\(code.uppercased())\")" : ""
            throw invalid(name, "\"\(code)\" is not an assigned ISO 3166-1 alpha-2 country code\(hint)")
        }
        return code
    }

    func roles(_ name: String) throws(ConfigurationError) -> NodeRoles? {
        guard let names = try strings(name) else { return nil }
        var roles = NodeRoles()
        for (i, role) in names.enumerated() {
            switch role {
            case "front": roles.insert(.front)
            case "exit": roles.insert(.exit)
            default:
                throw .invalidValue(file: file, key: "\(key(name))[\(i)]", problem: "unknown role \"\(role)\" (expected \"front\" or \"exit\")")
            }
        }
        guard !roles.isEmpty else { throw invalid(name, "at least one role is required (\"front\", \"exit\")") }
        return roles
    }

    /// A path from the file, resolved against the file's directory when relative.
    func path(_ name: String) throws(ConfigurationError) -> String? {
        guard let text = try string(name) else { return nil }
        guard !text.isEmpty else { throw invalid(name, "path is empty") }
        return resolve(text)
    }

    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : (baseDirectory as NSString).appendingPathComponent(path)
    }
}
