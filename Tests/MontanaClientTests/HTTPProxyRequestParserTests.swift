import XCTest
@testable import MontanaClient
import MontanaWire

final class HTTPProxyRequestParserTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Feeds one byte at a time and returns the first completed request.
    private func parseByteByByte(_ input: [UInt8]) throws -> (HTTPProxyRequest, [UInt8])? {
        var parser = HTTPProxyRequestParser()
        for (index, byte) in input.enumerated() {
            parser.receive([byte])
            if case .request(let request, var leftover) = try parser.next() {
                leftover += input[(index + 1)...]
                return (request, leftover)
            }
        }
        return nil
    }

    private struct WaitedOnACompleteHead: Error {}

    /// Parses a complete head given in one piece. A parser that asks for more bytes here is
    /// wrong (it would hang the app), so that fails the test rather than skipping it.
    private func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> HTTPProxyRequest {
        var parser = HTTPProxyRequestParser()
        parser.receive(bytes(text))
        guard case .request(let request, _) = try parser.next() else {
            XCTFail("the parser waits for more bytes after a complete head: \(text.prefix(120).debugDescription)", file: file, line: line)
            throw WaitedOnACompleteHead()
        }
        return request
    }

    private func error(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> HTTPProxyError? {
        do { _ = try parse(text, file: file, line: line); return nil } catch { return error as? HTTPProxyError }
    }

    private func startsWith(_ response: [UInt8], _ statusLine: String) -> Bool {
        response.starts(with: bytes(statusLine))
    }

    func test_connectByteByByteKeepsTheOptimisticTLSBytes() throws {
        let clientHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00]
        let input = bytes("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8\r\n\r\n") + clientHello
        let (request, leftover) = try XCTUnwrap(parseByteByByte(input))
        XCTAssertEqual(request, HTTPProxyRequest(kind: .connect, method: "CONNECT", host: "example.com", port: 443, credentials: nil))
        XCTAssertEqual(leftover, clientHello)
    }

    func test_leftoverArrivingInTheSameChunkIsReturned() throws {
        var parser = HTTPProxyRequestParser()
        parser.receive(bytes("CONNECT a.test:1 HTTP/1.1\r\n\r\nhello"))
        guard case .request(_, let leftover) = try parser.next() else { return XCTFail("no request") }
        XCTAssertEqual(leftover, bytes("hello"))
        XCTAssertEqual(try parser.next(), .needMoreBytes)
    }

    func test_connectToABracketedIPv6Literal() throws {
        let request = try parse("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n")
        XCTAssertEqual(request.kind, .connect)
        XCTAssertEqual(request.host, "2001:db8::1")
        XCTAssertEqual(request.port, 8443)
    }

    func test_connectNeedsAValidPort() {
        for target in ["example.com", "example.com:", "example.com:0", "example.com:65536", "example.com:44x", "[::1]", "::1:443",
                       "[::1]443", "[zz::1]:443", "user@example.com:443", "exa mple.com:443", ":443"] {
            XCTAssertNotNil(error("CONNECT \(target) HTTP/1.1\r\n\r\n"), target)
        }
        XCTAssertEqual(error("CONNECT example.com HTTP/1.1\r\n\r\n"), .invalidTarget)
    }

    func test_absoluteURIIsRewrittenToOriginFormWithoutProxyHeaders() throws {
        let input = bytes("""
        GET http://Example.com/path/x?q=1&r=%20 HTTP/1.1\r
        Host: wrong.example\r
        User-Agent: curl/8.5\r
        Proxy-Authorization: Basic Y291bnRyeS1kZTp4\r
        Proxy-Connection: Keep-Alive\r
        Connection: keep-alive\r
        Keep-Alive: timeout=5\r
        Accept: */*\r
        \r
        body
        """)
        let (request, leftover) = try XCTUnwrap(parseByteByByte(input))
        XCTAssertEqual(request.host, "Example.com")
        XCTAssertEqual(request.port, 80)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.credentials, ProxyCredentials(username: "country-de", password: "x"))
        XCTAssertEqual(request.kind, .forward(originFormHead: bytes(
            "GET /path/x?q=1&r=%20 HTTP/1.1\r\nHost: Example.com\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\nConnection: close\r\n\r\n")))
        XCTAssertEqual(leftover, bytes("body"))
    }

    func test_absoluteURIWithPortAndNoPathGetsSlashAndHostHeader() throws {
        let request = try parse("POST http://127.0.0.1:8080 HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(request.host, "127.0.0.1")
        XCTAssertEqual(request.port, 8080)
        XCTAssertEqual(request.kind, .forward(originFormHead: bytes(
            "POST / HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")))
        let query = try parse("GET http://[::1]:81?x=1#frag HTTP/1.1\r\n\r\n")
        XCTAssertEqual(query.host, "::1")
        XCTAssertEqual(query.kind, .forward(originFormHead: bytes("GET /?x=1 HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n")))
    }

    func test_upgradeRequestsKeepTheirConnectionHeader() throws {
        let request = try parse("GET http://ws.test/chat HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
        XCTAssertEqual(request.kind, .forward(originFormHead: bytes(
            "GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")))
    }

    func test_basicProxyAuthorizationIsDecoded() throws {
        // "node-0123abcd:p:a:ss": the password may itself contain colons.
        let request = try parse("CONNECT a.test:443 HTTP/1.1\r\nproxy-authorization:   basic   bm9kZS0wMTIzYWJjZDpwOmE6c3M=  \r\n\r\n")
        XCTAssertEqual(request.credentials, ProxyCredentials(username: "node-0123abcd", password: "p:a:ss"))
        XCTAssertNil(try parse("CONNECT a.test:443 HTTP/1.1\r\nProxy-Authorization: Digest x=y\r\n\r\n").credentials)
        XCTAssertEqual(error("CONNECT a.test:443 HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n"), .invalidProxyAuthorization)
        XCTAssertEqual(error("CONNECT a.test:443 HTTP/1.1\r\nProxy-Authorization: Basic bm9jb2xvbg==\r\n\r\n"), .invalidProxyAuthorization)
    }

    func test_httpsWithoutConnectAndNonProxyRequestsAreBadRequests() {
        XCTAssertEqual(error("GET https://example.com/ HTTP/1.1\r\n\r\n"), .httpsWithoutConnect)
        XCTAssertEqual(error("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), .notAProxyRequest)
        XCTAssertEqual(error("OPTIONS * HTTP/1.1\r\n\r\n"), .notAProxyRequest)
        XCTAssertEqual(error("GET ftp://example.com/ HTTP/1.1\r\n\r\n"), .invalidTarget)
        XCTAssertEqual(error("GET http://user:pw@example.com/ HTTP/1.1\r\n\r\n"), .invalidTarget)
        XCTAssertTrue(HTTPProxyError.httpsWithoutConnect.response.starts(with: bytes("HTTP/1.1 400 Bad Request\r\n")))
    }

    func test_garbageIsRefused() {
        XCTAssertEqual(error("hello\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(error("GET  http://a.test/ HTTP/1.1\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(error("GET http://a.test/\u{1} HTTP/1.1\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(error("G@T http://a.test/ HTTP/1.1\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(error("GET http://a.test/ HTTP/2.0\r\n\r\n"), .unsupportedVersion)
        XCTAssertEqual(error("GET http://a.test/ HTTP/1.1\r\nX: a\nY: b\r\n\r\n"), .malformedHeader)
        XCTAssertEqual(error("GET http://a.test/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n"), .malformedHeader)
        XCTAssertEqual(error("GET http://a.test/ HTTP/1.1\r\nX : a\r\n\r\n"), .malformedHeader)
        XCTAssertEqual(error("GET http://a.test/ HTTP/1.1\r\nNoColon\r\n\r\n"), .malformedHeader)
        XCTAssertEqual(error("GET http://a.test/ HTTP/1.1\r\nX: a\u{0}b\r\n\r\n"), .malformedHeader)
        XCTAssertEqual(error("\u{16}\u{3}\u{1} \r\n\r\n"), .malformedRequestLine)
    }

    func test_headLargerThan16KiBIsRefused() throws {
        var parser = HTTPProxyRequestParser()
        parser.receive(bytes("GET http://a.test/ HTTP/1.1\r\nX: "))
        XCTAssertEqual(try parser.next(), .needMoreBytes)
        parser.receive(Array(repeating: UInt8(ascii: "a"), count: HTTPProxyRequestParser.maxHeadLength))
        XCTAssertThrowsError(try parser.next()) { XCTAssertEqual($0 as? HTTPProxyError, .headTooLarge) }
        XCTAssertTrue(HTTPProxyError.headTooLarge.response.starts(with: bytes("HTTP/1.1 431 ")))

        let padding = String(repeating: "a", count: HTTPProxyRequestParser.maxHeadLength - 36)
        let exactlyAtLimit = "GET http://a.test/ HTTP/1.1\r\nX: \(padding)\r\n\r\n"
        XCTAssertEqual(exactlyAtLimit.utf8.count, HTTPProxyRequestParser.maxHeadLength)
        XCTAssertNoThrow(try parse(exactlyAtLimit))
        XCTAssertEqual(error("GET http://a.test/ HTTP/1.1\r\nX: a\(padding)\r\n\r\n"), .headTooLarge)
    }

    // MARK: bounds (issue 6 item 7)

    /// `CONNECT [` + 400 characters + `]:443` trapped the client in EgressMessage.encode.
    func test_connectToA400CharacterBracketedHostIsA400() throws {
        for filler in ["a", ":", "1", "."] {
            let text = "CONNECT [\(String(repeating: filler, count: 400))]:443 HTTP/1.1\r\nHost: x\r\n\r\n"
            XCTAssertEqual(error(text), .hostTooLong, "filler \(filler)")
        }
        XCTAssertTrue(startsWith(HTTPProxyError.hostTooLong.response, "HTTP/1.1 400 Bad Request\r\n"))
        let longestLiteral = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
        XCTAssertEqual(longestLiteral.utf8.count, HTTPProxyRequestParser.maxIPv6LiteralLength)
        XCTAssertEqual(try parse("CONNECT [\(longestLiteral)]:443 HTTP/1.1\r\n\r\n").host, longestLiteral)
        XCTAssertEqual(error("CONNECT [\(longestLiteral)0]:443 HTTP/1.1\r\n\r\n"), .hostTooLong)
        XCTAssertEqual(error("GET http://[\(String(repeating: "a", count: 400))]/ HTTP/1.1\r\n\r\n"), .hostTooLong)
    }

    /// Every host the parser accepts fits an EgressOpen; one byte more is refused with 400.
    func test_hostNamesUpTo255BytesParseAndEncodeLongerOnesAre400() throws {
        let longest = String(repeating: "h", count: HTTPProxyRequestParser.maxHostLength)
        let request = try parse("CONNECT \(longest):443 HTTP/1.1\r\n\r\n")
        XCTAssertEqual(request.host, longest)
        let open = EgressMessage.open(EgressOpen(streamID: 1, transport: .tcp, address: .host(request.host), port: request.port))
        XCTAssertEqual(try EgressMessage.decode(try open.encode()), open)
        XCTAssertEqual(error("CONNECT \(longest)h:443 HTTP/1.1\r\n\r\n"), .hostTooLong)
        XCTAssertEqual(error("GET http://\(longest)h/ HTTP/1.1\r\n\r\n"), .hostTooLong)
    }

    func test_requestLineOver8KiBIsRefusedBeforeTheHeadEnds() throws {
        let prefix = "GET http://a.test/"
        let suffix = " HTTP/1.1"
        let atLimit = prefix + String(repeating: "p", count: HTTPProxyRequestParser.maxRequestLineLength - prefix.utf8.count - suffix.utf8.count) + suffix
        XCTAssertEqual(atLimit.utf8.count, HTTPProxyRequestParser.maxRequestLineLength)
        XCTAssertNoThrow(try parse(atLimit + "\r\n\r\n"))

        // No CRLF yet, one byte over: refused now, not after 16 KiB or never.
        var parser = HTTPProxyRequestParser()
        parser.receive(bytes(prefix))
        XCTAssertEqual(try parser.next(), .needMoreBytes)
        parser.receive(Array(repeating: UInt8(ascii: "p"), count: HTTPProxyRequestParser.maxRequestLineLength - prefix.utf8.count))
        XCTAssertEqual(try parser.next(), .needMoreBytes, "exactly at the limit the CRLF may still come")
        parser.receive([UInt8(ascii: "p"), UInt8(ascii: "p")])
        XCTAssertThrowsError(try parser.next()) { XCTAssertEqual($0 as? HTTPProxyError, .requestLineTooLong) }
        XCTAssertTrue(startsWith(HTTPProxyError.requestLineTooLong.response, "HTTP/1.1 400 Bad Request\r\n"))
    }

    func test_requestLineLimitHoldsForByteAtATimeInput() {
        var parser = HTTPProxyRequestParser()
        var thrown: HTTPProxyError?
        var fed = 0
        for byte in bytes("CONNECT ") + Array(repeating: UInt8(ascii: "a"), count: 20_000) {
            parser.receive([byte])
            fed += 1
            do { _ = try parser.next() } catch { thrown = error as? HTTPProxyError; break }
        }
        XCTAssertEqual(thrown, .requestLineTooLong)
        XCTAssertEqual(fed, HTTPProxyRequestParser.maxRequestLineLength + 2, "refused at the first byte past room for the CRLF")
    }

    /// An app that streams header lines forever is answered 431 once the head passes its
    /// bound, and the parser never holds more than the bound plus one read.
    func test_endlessHeaderFloodIsCutAtTheHeadBoundWith431() {
        var parser = HTTPProxyRequestParser()
        parser.receive(bytes("GET http://a.test/ HTTP/1.1\r\n"))
        let chunk = bytes(String(repeating: "X-Flood: 0123456789abcdef\r\n", count: 40))  // 1080 bytes, no blank line
        var thrown: HTTPProxyError?
        var maxBuffered = 0
        for _ in 0..<1000 {  // up to ~1 MiB offered
            parser.receive(chunk)
            maxBuffered = max(maxBuffered, parser.bufferedByteCount)
            do { _ = try parser.next() } catch { thrown = error as? HTTPProxyError; break }
        }
        XCTAssertEqual(thrown, .headTooLarge)
        XCTAssertLessThanOrEqual(maxBuffered, HTTPProxyRequestParser.maxHeadLength + chunk.count)
        XCTAssertTrue(startsWith(HTTPProxyError.headTooLarge.response, "HTTP/1.1 431 "))
    }

    func test_moreThan100HeaderFieldsGets431() throws {
        func head(_ count: Int) -> String {
            "CONNECT a.test:443 HTTP/1.1\r\n" + (0..<count).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        }
        XCTAssertNoThrow(try parse(head(HTTPProxyRequestParser.maxHeaderCount)))
        XCTAssertEqual(error(head(HTTPProxyRequestParser.maxHeaderCount + 1)), .tooManyHeaders)
        XCTAssertTrue(startsWith(HTTPProxyError.tooManyHeaders.response, "HTTP/1.1 431 "))
    }

    func test_theParserServesASecondHeadAfterTheFirstWithFreshBounds() throws {
        // The request-line scan restarts after each head (a reused parser must not carry state).
        var parser = HTTPProxyRequestParser()
        parser.receive(bytes("CONNECT a.test:1 HTTP/1.1\r\n\r\n"))
        guard case .request = try parser.next() else { return XCTFail("first head") }
        parser.receive(bytes("CONNECT b.test:2 HTTP/1.1\r\n\r\n"))
        guard case .request(let second, _) = try parser.next() else { return XCTFail("second head") }
        XCTAssertEqual(second.host, "b.test")
    }
}
