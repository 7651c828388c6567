import Foundation
import MontanaDirectory
import NIOCore
import XCTest
@testable import MontanaNode

/// The subscription server on a real loopback socket, driven by the real curl.
final class SubscriptionServerTests: XCTestCase {
    private func serve(_ document: SubscriptionDocument, idleTimeout: TimeAmount = SubscriptionServer.defaultIdleTimeout,
                       _ body: (Int, String) async throws -> Void) async throws {
        let path = try SubscriptionTestSupport.directory() + "/sub.json"
        try document.write(to: path)
        let server = SubscriptionServer(file: path, listen: HostPort(host: "127.0.0.1", port: 0), idleTimeout: idleTimeout)
        let port = try await server.start()
        do {
            try await body(port, path)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func test_servesTheDocumentWithSubscriptionHeaders() async throws {
        let document = try SubscriptionTestSupport.document()
        try await serve(document) { port, path in
            let file = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            for route in ["/", "/sub", "/custom/feed?token=abc", "/sub?anything=1"] {
                let r = try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)\(route)"])
                XCTAssertEqual(r.exitCode, 0)
                XCTAssertEqual(r.status, 200, route)
                XCTAssertEqual(r.body, file, "the file's bytes, as they are")
                XCTAssertEqual(r.headers["content-type"], "application/json")
                XCTAssertEqual(r.headers["content-length"], String(file.count))
                XCTAssertEqual(r.headers["profile-update-interval"], "6")
                XCTAssertEqual(r.headers["profile-title"], "base64:" + Data("Friends of Montana".utf8).base64EncodedString())
                let pass = try XCTUnwrap(document.account?.pass)
                XCTAssertEqual(r.headers["subscription-userinfo"], "upload=0; download=0; total=\(5 << 30); expire=\(pass.notAfter)")
                XCTAssertEqual(r.headers["cache-control"], "no-store")
                XCTAssertEqual(r.headers["content-disposition"], "attachment; filename=\"montana.json\"")
                XCTAssertNil(r.headers["server"], "no software is named")
            }
            XCTAssertEqual(try SubscriptionDocument.decode(try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/"]).body, source: "curl"), document)
        }
    }

    func test_headersWithoutPassAreZero() async throws {
        let full = try SubscriptionTestSupport.document(title: "Ünïcode title")
        var document = full
        document.account = nil
        try await serve(document) { port, _ in
            let r = try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/sub"])
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.headers["subscription-userinfo"], "upload=0; download=0; total=0; expire=0")
            XCTAssertEqual(r.headers["profile-title"], "base64:" + Data("Ünïcode title".utf8).base64EncodedString())
        }
    }

    func test_otherPathsAndMethodsAreRefused() async throws {
        try await serve(try SubscriptionTestSupport.document()) { port, _ in
            let missing = try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/admin"])
            XCTAssertEqual(missing.status, 404)
            XCTAssertEqual(String(decoding: missing.body, as: UTF8.self), "not found\n")
            XCTAssertNil(missing.headers["server"])
            XCTAssertEqual(try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/sub/"]).status, 404)
            let post = try SubscriptionTestSupport.curl(["-X", "POST", "--data", "x=1", "http://127.0.0.1:\(port)/"])
            XCTAssertEqual(post.status, 405)
            XCTAssertEqual(post.headers["allow"], "GET")
            XCTAssertEqual(try SubscriptionTestSupport.curl(["-I", "http://127.0.0.1:\(port)/"]).status, 405, "HEAD is not GET")
        }
    }

    func test_requestHeadOver16KiBIs431() async throws {
        try await serve(try SubscriptionTestSupport.document()) { port, _ in
            let big = try SubscriptionTestSupport.curl(["-H", "X-Big: " + String(repeating: "a", count: 17 * 1024), "http://127.0.0.1:\(port)/"])
            XCTAssertEqual(big.status, 431)
            XCTAssertTrue(big.body.isEmpty)
            let fits = try SubscriptionTestSupport.curl(["-H", "X-Big: " + String(repeating: "a", count: 15 * 1024), "http://127.0.0.1:\(port)/"])
            XCTAssertEqual(fits.status, 200, "a 15 KiB head is still served")
            let many = (0..<400).flatMap { ["-H", "X-H\($0): " + String(repeating: "b", count: 40)] }
            XCTAssertEqual(try SubscriptionTestSupport.curl(many + ["http://127.0.0.1:\(port)/"]).status, 431, "many small headers count too")
        }
    }

    func test_rewrittenFileIsServedAndABrokenOneKeepsTheLastGood() async throws {
        try await serve(try SubscriptionTestSupport.document(title: "First")) { port, path in
            let first = try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/"])
            XCTAssertEqual(first.headers["profile-title"], "base64:" + Data("First".utf8).base64EncodedString())
            let second = try SubscriptionTestSupport.document(title: "Second")
            try second.write(to: path)
            let updated = try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/"])
            XCTAssertEqual(updated.headers["profile-title"], "base64:" + Data("Second".utf8).base64EncodedString())
            XCTAssertEqual(updated.body, second.encoded())
            try Data("{ broken".utf8).write(to: URL(fileURLWithPath: path))
            let kept = try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/"])
            XCTAssertEqual(kept.status, 200)
            XCTAssertEqual(kept.body, second.encoded(), "the last good version stays in service")
            try FileManager.default.removeItem(atPath: path)
            XCTAssertEqual(try SubscriptionTestSupport.curl(["http://127.0.0.1:\(port)/"]).body, second.encoded())
        }
    }

    func test_idleConnectionIsClosed() async throws {
        try await serve(try SubscriptionTestSupport.document(), idleTimeout: .milliseconds(300)) { port, _ in
            let seconds = try XCTUnwrap(try SubscriptionTestSupport.secondsUntilClosed(port: port, limit: 5), "not closed within 5 s")
            XCTAssertGreaterThan(seconds, 0.2)
            XCTAssertLessThan(seconds, 3)
        }
    }

    func test_defaultIdleTimeoutIsTenSeconds() {
        XCTAssertEqual(SubscriptionServer.defaultIdleTimeout, .seconds(10))
        XCTAssertEqual(SubscriptionServer.maxRequestHeadBytes, 16 * 1024)
    }

    func test_startRefusesAnInvalidFile() async throws {
        let path = try SubscriptionTestSupport.directory() + "/sub.json"
        try Data("{\"format\": \"montana-subscription-v0\"}".utf8).write(to: URL(fileURLWithPath: path))
        let server = SubscriptionServer(file: path, listen: HostPort(host: "127.0.0.1", port: 0))
        do {
            _ = try await server.start()
            XCTFail("started with an invalid document")
        } catch {
            XCTAssertTrue("\(error)".hasPrefix("\(path): format: must be \"montana-subscription-v1\""), "\(error)")
        }
        await server.stop()
    }
}
