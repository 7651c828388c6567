import MontanaWire
import XCTest
@testable import MontanaClient

final class SOCKS5ServerHandshakeTests: XCTestCase {
    private typealias Step = SOCKS5ServerHandshake.Step

    /// Feeds `chunks` one at a time, runs `next()` until it needs bytes, answers `.authenticate`
    /// with `acceptCredentials`, and records every step except `.needMoreBytes`.
    private func drive(_ handshake: inout SOCKS5ServerHandshake, _ chunks: [[UInt8]], acceptCredentials: Bool = true) throws -> [Step] {
        var steps: [Step] = []
        for chunk in chunks {
            handshake.receive(chunk)
            loop: while true {
                let step = try handshake.next()
                switch step {
                case .needMoreBytes: break loop
                case .send: steps.append(step)
                case .authenticate:
                    steps.append(step)
                    steps.append(try handshake.completeAuthentication(accepted: acceptCredentials))
                    if !acceptCredentials { return steps }
                case .request, .sendAndClose:
                    steps.append(step)
                    return steps
                }
            }
        }
        return steps
    }

    private func byteByByte(_ bytes: [UInt8]) -> [[UInt8]] { bytes.map { [$0] } }

    private let greetingNoAuth: [UInt8] = [0x05, 0x01, 0x00]
    private let connectIPv4: [UInt8] = [0x05, 0x01, 0x00, 0x01, 93, 184, 216, 34, 0x01, 0xbb]

    func test_noAuthenticationConnectToIPv4ByteByByte() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        let steps = try drive(&handshake, byteByByte(greetingNoAuth + connectIPv4))
        XCTAssertEqual(steps, [
            .send([0x05, 0x00]),
            .request(SOCKS5Request(command: .connect, address: .ipv4([93, 184, 216, 34]), port: 443), leftover: []),
        ])
        XCTAssertEqual(handshake.selectedMethod, .noAuthentication)
    }

    func test_pipelinedGreetingRequestAndOptimisticDataAreAllRead() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        let data = Array("GET / HTTP/1.1\r\n".utf8)
        let steps = try drive(&handshake, [greetingNoAuth + connectIPv4 + data])
        XCTAssertEqual(steps.last, .request(SOCKS5Request(command: .connect, address: .ipv4([93, 184, 216, 34]), port: 443), leftover: data))
    }

    func test_leftoverIsPreservedWhenTheRequestIsSplitAcrossChunks() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        let all = greetingNoAuth + connectIPv4 + [0xde, 0xad, 0xbe, 0xef]
        let steps = try drive(&handshake, [Array(all[..<7]), Array(all[7...])])
        XCTAssertEqual(steps.last, .request(SOCKS5Request(command: .connect, address: .ipv4([93, 184, 216, 34]), port: 443),
                                            leftover: [0xde, 0xad, 0xbe, 0xef]))
    }

    func test_usernamePasswordIsChosenWhenOfferedAndCarriesTheExitSelection() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        let greeting: [UInt8] = [0x05, 0x02, 0x00, 0x02]
        let auth: [UInt8] = [0x01, 10] + Array("country-de".utf8) + [1] + Array("x".utf8)
        let request: [UInt8] = [0x05, 0x01, 0x00, 0x03, 11] + Array("example.com".utf8) + [0x00, 0x50]
        let steps = try drive(&handshake, byteByByte(greeting + auth + request))
        XCTAssertEqual(steps, [
            .send([0x05, 0x02]),
            .authenticate(ProxyCredentials(username: "country-de", password: "x")),
            .send([0x01, 0x00]),
            .request(SOCKS5Request(command: .connect, address: .host("example.com"), port: 80), leftover: []),
        ])
        XCTAssertEqual(handshake.selectedMethod, .usernamePassword)
    }

    func test_emptyUsernameAndPasswordAreAccepted() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: true)
        let steps = try drive(&handshake, [[0x05, 0x01, 0x02], [0x01, 0x00, 0x00]])
        XCTAssertEqual(steps[1], .authenticate(ProxyCredentials(username: "", password: "")))
    }

    func test_rejectedCredentialsGetStatusOneAndClose() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: true)
        let steps = try drive(&handshake, [[0x05, 0x01, 0x02, 0x01, 0x01, 0x61, 0x01, 0x62]], acceptCredentials: false)
        XCTAssertEqual(steps.last, .sendAndClose([0x01, 0x01], .authenticationFailed))
        XCTAssertThrowsError(try handshake.next()) { XCTAssertEqual($0 as? SOCKS5Error, .callOutOfOrder) }
    }

    func test_noAcceptableMethodWhenCredentialsAreRequiredButNotOffered() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: true)
        let steps = try drive(&handshake, [[0x05, 0x01, 0x00]])
        XCTAssertEqual(steps, [.sendAndClose([0x05, 0xff], .noAcceptableAuthenticationMethod)])
        var none = SOCKS5ServerHandshake(credentialsRequired: false)
        XCTAssertEqual(try drive(&none, [[0x05, 0x00]]), [.sendAndClose([0x05, 0xff], .noAcceptableAuthenticationMethod)])
    }

    func test_bindIsAnsweredCommandNotSupported() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        let bind: [UInt8] = [0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
        let steps = try drive(&handshake, byteByByte(greetingNoAuth + bind))
        XCTAssertEqual(steps.last, .sendAndClose([0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0], .commandNotSupported))
    }

    func test_unknownAddressTypeIsAnsweredAddressTypeNotSupported() throws {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        let steps = try drive(&handshake, [greetingNoAuth + [0x05, 0x01, 0x00, 0x09, 1, 2, 3]])
        XCTAssertEqual(steps.last, .sendAndClose([0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0], .addressTypeNotSupported))
    }

    func test_ipv6ConnectAndUDPAssociateByteByByte() throws {
        let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]
        var connect = SOCKS5ServerHandshake(credentialsRequired: false)
        XCTAssertEqual(try drive(&connect, byteByByte(greetingNoAuth + [0x05, 0x01, 0x00, 0x04] + v6 + [0x1f, 0x90])).last,
                       .request(SOCKS5Request(command: .connect, address: .ipv6(v6), port: 8080), leftover: []))
        var associate = SOCKS5ServerHandshake(credentialsRequired: false)
        XCTAssertEqual(try drive(&associate, byteByByte(greetingNoAuth + [0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0])).last,
                       .request(SOCKS5Request(command: .udpAssociate, address: .ipv4([0, 0, 0, 0]), port: 0), leftover: []))
    }

    func test_garbageThrowsTypedErrors() {
        func error(_ bytes: [UInt8], credentialsRequired: Bool = false) -> SOCKS5Error? {
            var handshake = SOCKS5ServerHandshake(credentialsRequired: credentialsRequired)
            do { _ = try drive(&handshake, [bytes]); return nil } catch { return error as? SOCKS5Error }
        }
        XCTAssertEqual(error([0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0]), .unsupportedVersion(4))
        XCTAssertEqual(error(Array("GET / HTTP/1.1\r\n".utf8)), .unsupportedVersion(0x47))
        XCTAssertEqual(error(greetingNoAuth + [0x04, 0x01, 0x00, 0x01]), .unsupportedVersion(4))
        XCTAssertEqual(error([0x05, 0x01, 0x02, 0x05, 0x00, 0x00]), .unsupportedAuthenticationVersion(5))
        XCTAssertEqual(error(greetingNoAuth + [0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50]), .invalidDomainName)
        XCTAssertEqual(error(greetingNoAuth + [0x05, 0x01, 0x00, 0x03, 0x03, 0x61, 0x20, 0x62, 0x00, 0x50]), .invalidDomainName)
        XCTAssertEqual(error(greetingNoAuth + [0x05, 0x01, 0x00, 0x03, 0x02, 0xc3, 0x28, 0x00, 0x50]), .invalidDomainName)
    }

    func test_completingAuthenticationOutOfTurnIsRefused() {
        var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
        XCTAssertThrowsError(try handshake.completeAuthentication(accepted: true)) {
            XCTAssertEqual($0 as? SOCKS5Error, .callOutOfOrder)
        }
    }
}
