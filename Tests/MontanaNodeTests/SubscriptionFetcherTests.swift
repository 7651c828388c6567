import Foundation
import MontanaDirectory
import NIOCore
import XCTest
@testable import MontanaNode

final class SubscriptionFetcherTests: XCTestCase {
    private func reason(_ url: String, timeout: TimeAmount = .seconds(10)) async -> SubscriptionFetchError.Reason? {
        do {
            _ = try await SubscriptionFetcher.fetch(url: url, timeout: timeout)
            XCTFail("fetched \(url)")
            return nil
        } catch let error as SubscriptionFetchError {
            XCTAssertEqual(error.url, url)
            return error.reason
        } catch {
            XCTFail("\(error)")
            return nil
        }
    }

    func test_fetchesFromTheSubscriptionServer() async throws {
        let document = try SubscriptionTestSupport.document()
        let path = try SubscriptionTestSupport.directory() + "/sub.json"
        try document.write(to: path)
        let server = SubscriptionServer(file: path, listen: HostPort(host: "127.0.0.1", port: 0))
        let port = try await server.start()
        let fetched = try await SubscriptionFetcher.fetch(url: "http://127.0.0.1:\(port)/sub")
        XCTAssertEqual(fetched.body, document.encoded())
        XCTAssertEqual(fetched.updateIntervalHours, 6)
        XCTAssertEqual(try SubscriptionDocument.decode(fetched.body, source: "http://127.0.0.1:\(port)/sub"), document)
        let query = try await SubscriptionFetcher.fetch(url: "http://127.0.0.1:\(port)/custom/feed?token=abc")
        XCTAssertEqual(query.body, document.encoded())
        let r1 = await reason("http://127.0.0.1:\(port)/nothing-here")
        XCTAssertEqual(r1, .status(404))
        await server.stop()
    }

    func test_readsFilesAndFileURLs() async throws {
        let document = try SubscriptionTestSupport.document()
        let dir = try SubscriptionTestSupport.directory()
        try document.write(to: dir + "/my sub.json")
        let plain = try await SubscriptionFetcher.fetch(url: dir + "/my sub.json")
        XCTAssertEqual(plain.body, document.encoded())
        XCTAssertNil(plain.updateIntervalHours)
        let url = try await SubscriptionFetcher.fetch(url: "file://" + dir + "/my%20sub.json")
        XCTAssertEqual(url.body, document.encoded())
        guard case .file(let why) = await reason(dir + "/missing.json") else { return XCTFail() }
        XCTAssertTrue(why.hasPrefix(dir + "/missing.json: "), why)
        let big = dir + "/big.json"
        try Data(count: SubscriptionFetcher.maxBodyBytes + 1).write(to: URL(fileURLWithPath: big))
        guard case .file(let tooBig) = await reason(big) else { return XCTFail() }
        XCTAssertTrue(tooBig.contains("limit 1048576"), tooBig)
    }

    func test_bodyOverOneMiBIsRefused() async throws {
        let body = [UInt8](repeating: 0x20, count: 2 << 20)
        let announced = try await CannedHTTPServer(response: CannedHTTPServer.response(
            status: "200 OK", headers: ["Content-Length: \(body.count)", "Connection: close"], body: body))
        let r2 = await reason("http://127.0.0.1:\(announced.port)/")
        XCTAssertEqual(r2, .tooLarge(limit: 1 << 20))
        await announced.stop()
        let unannounced = try await CannedHTTPServer(response: CannedHTTPServer.response(
            status: "200 OK", headers: ["Connection: close"], body: body))
        let r3 = await reason("http://127.0.0.1:\(unannounced.port)/")
        XCTAssertEqual(r3, .tooLarge(limit: 1 << 20))
        await unannounced.stop()
        let chunk = Array("100000\r\n".utf8) + [UInt8](repeating: 0x20, count: 1 << 20) + Array("\r\n1\r\n \r\n0\r\n\r\n".utf8)
        let chunked = try await CannedHTTPServer(response: CannedHTTPServer.response(
            status: "200 OK", headers: ["Transfer-Encoding: chunked"], body: chunk))
        let r4 = await reason("http://127.0.0.1:\(chunked.port)/")
        XCTAssertEqual(r4, .tooLarge(limit: 1 << 20), "one byte over, chunked")
        await chunked.stop()
        let exact = try await CannedHTTPServer(response: CannedHTTPServer.response(
            status: "200 OK", headers: ["Content-Length: \(1 << 20)", "profile-update-interval: 9999"], body: [UInt8](repeating: 0x20, count: 1 << 20)))
        let fetched = try await SubscriptionFetcher.fetch(url: "http://127.0.0.1:\(exact.port)/")
        XCTAssertEqual(fetched.body.count, 1 << 20, "exactly 1 MiB is allowed")
        XCTAssertNil(fetched.updateIntervalHours, "an interval out of 1...720 is ignored")
        await exact.stop()
    }

    func test_redirectsAreNotFollowed() async throws {
        let server = try await CannedHTTPServer(response: CannedHTTPServer.response(
            status: "301 Moved Permanently", headers: ["Location: http://elsewhere.example/sub", "Content-Length: 0"], body: []))
        let url = "http://127.0.0.1:\(server.port)/sub"
        let r = await reason(url)
        XCTAssertEqual(r, .redirect(status: 301, location: "http://elsewhere.example/sub"))
        XCTAssertEqual(SubscriptionFetchError(url: url, reason: r ?? .status(0)).description,
                       "\(url): the server answered 301 (a redirect to http://elsewhere.example/sub); redirects are not followed, use the final URL")
        await server.stop()
    }

    func test_deadlineEndsASilentServer() async throws {
        let server = try await CannedHTTPServer(response: nil)
        let start = Date()
        let r5 = await reason("http://127.0.0.1:\(server.port)/", timeout: .milliseconds(300))
        XCTAssertEqual(r5, .timeout(milliseconds: 300))
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        XCTAssertEqual(SubscriptionFetcher.defaultTimeout, .seconds(10))
        await server.stop()
    }

    func test_unsupportedAndBadURLs() async throws {
        let https = await reason("https://sub.example.net/sub")
        XCTAssertEqual(https, .unsupportedScheme("https"))
        XCTAssertEqual(https?.description, "https:// is not supported yet; use an http:// URL or a file path")
        let r6 = await reason("ftp://x/y")
        XCTAssertEqual(r6, .unsupportedScheme("ftp"))
        let r7 = await reason("http:///sub")
        XCTAssertEqual(r7, .invalidURL("no host"))
        let r8 = await reason("http://h:99999/")
        XCTAssertEqual(r8, .invalidURL("port must be 1...65535"))
        let r9 = await reason("http://user:pw@h/")
        XCTAssertEqual(r9, .invalidURL("user names and passwords in URLs are not supported"))
        let r10 = await reason("file://relative")
        XCTAssertEqual(r10, .invalidURL("a file URL is file:///absolute/path"))
        // A port nobody listens on.
        let closed = try await CannedHTTPServer(response: [])
        let port = closed.port
        await closed.stop()
        guard case .connection = await reason("http://127.0.0.1:\(port)/") else { return XCTFail() }
    }

    func test_urlParsing() throws {
        XCTAssertEqual(try SubscriptionFetcher.Target(parsing: "http://h"), .http(host: "h", port: 80, path: "/"))
        XCTAssertEqual(try SubscriptionFetcher.Target(parsing: "HTTP://h:8080?x=1#f"), .http(host: "h", port: 8080, path: "/?x=1"))
        XCTAssertEqual(try SubscriptionFetcher.Target(parsing: "http://[::1]:81/a/b?c"), .http(host: "::1", port: 81, path: "/a/b?c"))
        XCTAssertEqual(try SubscriptionFetcher.Target(parsing: "file:///etc/x"), .file("/etc/x"))
        XCTAssertEqual(try SubscriptionFetcher.Target(parsing: "file://localhost/etc/x"), .file("/etc/x"))
        XCTAssertEqual(try SubscriptionFetcher.Target(parsing: "sub.json"), .file("sub.json"))
    }
}
