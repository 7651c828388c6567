import Foundation
import XCTest

/// Where things are: the repository root (found from this file) and the built `montana` binary.
enum Paths {
    /// `Tests/MontanaEndToEndTests/Support/Paths.swift` -> the repository root.
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent() // Support
        .deletingLastPathComponent() // MontanaEndToEndTests
        .deletingLastPathComponent() // Tests
        .deletingLastPathComponent() // repository root

    /// `MONTANA_BINARY` when set (a build in another scratch path), else `.build/debug/montana`.
    static var montanaBinary: String {
        if let path = ProcessInfo.processInfo.environment["MONTANA_BINARY"], !path.isEmpty { return path }
        return repositoryRoot.appendingPathComponent(".build/debug/montana").path
    }

    /// The `montana` binary, or a failure that says how to build it.
    static func montana(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = montanaBinary
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("the montana binary is missing at \(path); build it first with `swift build --build-tests`",
                    file: file, line: line)
            throw E2EError("montana binary missing at \(path)")
        }
        return path
    }

    /// A fresh directory under the system temporary directory.
    static func makeTemporaryDirectory(_ prefix: String) throws -> String {
        let path = (NSTemporaryDirectory() as NSString)
            .appendingPathComponent("\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Removes a test's temporary directory unless MONTANA_E2E_KEEP is set (for post-mortems).
    static func removeTemporaryDirectory(_ path: String?) {
        guard let path, ProcessInfo.processInfo.environment["MONTANA_E2E_KEEP"] == nil else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// An error with a message meant for the test log.
struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every `interval` until it holds or `timeout` passes. Returns whether it held.
@discardableResult
func poll(timeout: TimeInterval, interval: TimeInterval = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        Thread.sleep(forTimeInterval: interval)
    }
}
