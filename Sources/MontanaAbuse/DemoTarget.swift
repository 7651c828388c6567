import Foundation
import MontanaNode

/// The demo's status file, as `montana demo --status-json FILE` writes it.
typealias DemoTarget = DemoStatusFile

extension DemoStatusFile {
    static func load(_ path: String) throws -> DemoStatusFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw AbuseError("cannot read \(path)") }
        return try JSONDecoder().decode(DemoStatusFile.self, from: data)
    }

    /// The front-only city (warsaw in the demo): a node whose only sessions are control sessions.
    var frontOnly: City? { cities.first { !$0.isExit } }
}

struct AbuseError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
