import XCTest
@testable import MontanaClient

final class HTTPProxyResponseTests: XCTestCase {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func test_connectionEstablishedIsExact() {
        XCTAssertEqual(text(HTTPProxyResponse.connectionEstablished), "HTTP/1.1 200 Connection Established\r\n\r\n")
    }

    func test_proxyAuthenticationRequiredCarriesTheBasicChallenge() {
        XCTAssertEqual(text(HTTPProxyResponse.proxyAuthenticationRequired),
                       "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"montana\"\r\n"
                       + "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\nConnection: close\r\n\r\n"
                       + "proxy authentication required\n")
    }

    func test_gatewayErrorsHaveAShortTextBody() {
        XCTAssertEqual(text(HTTPProxyResponse.badGateway("exit refused by policy")),
                       "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\n"
                       + "Connection: close\r\n\r\nexit refused by policy\n")
        XCTAssertTrue(text(HTTPProxyResponse.gatewayTimeout("no answer")).hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        XCTAssertTrue(text(HTTPProxyResponse.badRequest("x")).hasSuffix("Content-Length: 2\r\nConnection: close\r\n\r\nx\n"))
    }
}
