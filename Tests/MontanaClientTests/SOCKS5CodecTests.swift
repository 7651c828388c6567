import MontanaWire
import XCTest
@testable import MontanaClient

final class SOCKS5CodecTests: XCTestCase {
    func test_replyEncodingIsByteExact() {
        XCTAssertEqual(SOCKS5Reply(code: .succeeded, boundAddress: .ipv4([127, 0, 0, 1]), boundPort: 1080).encode(),
                       [0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0x04, 0x38])
        let v6: [UInt8] = Array(repeating: 0, count: 15) + [1]
        XCTAssertEqual(SOCKS5Reply(code: .succeeded, boundAddress: .ipv6(v6), boundPort: 443).encode(),
                       [0x05, 0x00, 0x00, 0x04] + v6 + [0x01, 0xbb])
        XCTAssertEqual(SOCKS5Reply(code: .succeeded, boundAddress: .host("relay"), boundPort: 1).encode(),
                       [0x05, 0x00, 0x00, 0x03, 5] + Array("relay".utf8) + [0x00, 0x01])
    }

    func test_everyReplyCodeHasItsRFCValue() {
        XCTAssertEqual(SOCKS5Reply.Code.allCases.map(\.rawValue), Array(0...8))
        for code in SOCKS5Reply.Code.allCases {
            XCTAssertEqual(SOCKS5Reply(code: code).encode(), [0x05, code.rawValue, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
        }
    }

    func test_unrepresentableBoundAddressIsWrittenAsUnspecified() {
        XCTAssertEqual(SOCKS5Reply(code: .succeeded, boundAddress: .ipv4([1, 2, 3]), boundPort: 7).encode(),
                       [0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x07])
        XCTAssertEqual(SOCKS5Reply(code: .succeeded, boundAddress: .host(String(repeating: "a", count: 256))).encode(),
                       [0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
    }

    func test_egressStatusMapsToReplyCodes() {
        XCTAssertEqual(SOCKS5Reply.Code(status: .open), .succeeded)
        XCTAssertEqual(SOCKS5Reply.Code(status: .refusedByPolicy), .connectionNotAllowed)
        XCTAssertEqual(SOCKS5Reply.Code(status: .unreachable), .hostUnreachable)
        XCTAssertEqual(SOCKS5Reply.Code(status: .rateLimited), .generalFailure)
    }

    func test_udpDatagramHeaderRoundTrips() throws {
        let wire: [UInt8] = [0, 0, 0, 0x03, 11] + Array("example.com".utf8) + [0x00, 0x35] + [0xab, 0xcd]
        let datagram = try SOCKS5UDPDatagram.decode(wire)
        XCTAssertEqual(datagram, SOCKS5UDPDatagram(address: .host("example.com"), port: 53, payload: [0xab, 0xcd]))
        XCTAssertEqual(datagram.encode(), wire)
        let v4 = SOCKS5UDPDatagram(address: .ipv4([8, 8, 8, 8]), port: 53, payload: [])
        XCTAssertEqual(v4.encode(), [0, 0, 0, 0x01, 8, 8, 8, 8, 0, 53])
        XCTAssertEqual(try SOCKS5UDPDatagram.decode(v4.encode()), v4)
    }

    func test_fragmentedTruncatedAndUnknownDatagramsAreRejected() {
        func error(_ bytes: [UInt8]) -> SOCKS5Error? {
            do { _ = try SOCKS5UDPDatagram.decode(bytes); return nil } catch { return error }
        }
        XCTAssertEqual(error([0, 0, 1, 0x01, 8, 8, 8, 8, 0, 53, 0xff]), .fragmentedDatagram(1))
        XCTAssertEqual(error([0, 0, 0]), .truncatedDatagram)
        XCTAssertEqual(error([0, 0, 0, 0x01, 8, 8, 8]), .truncatedDatagram)
        XCTAssertEqual(error([0, 0, 0, 0x04] + Array(repeating: 0, count: 17)), .truncatedDatagram)
        XCTAssertEqual(error([0, 0, 0, 0x02, 1, 2]), .unknownAddressType(2))
        XCTAssertEqual(error([0, 0, 0, 0x03, 0, 0, 53]), .invalidDomainName)
    }

    func test_firstByteSelectsTheProxyProtocol() {
        XCTAssertEqual(ProxyProtocol(firstByte: 0x05), .socks5)
        XCTAssertEqual(ProxyProtocol(firstByte: 0x04), .socks4)
        XCTAssertEqual(ProxyProtocol(firstByte: UInt8(ascii: "C")), .http)
        XCTAssertEqual(ProxyProtocol(firstByte: UInt8(ascii: "g")), .http)
        XCTAssertEqual(ProxyProtocol(firstByte: 0x16), .unknown, "TLS ClientHello")
        XCTAssertEqual(ProxyProtocol(firstByte: UInt8(ascii: "[")), .unknown)
    }
}
