import XCTest
@testable import MontanaClient
import MontanaWire

/// Parsers face whatever a local app sends: random and mutated input must end in a value or a
/// typed error, never a trap.
final class HostileInputTests: XCTestCase {
    private struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    private func mutations(of seed: [UInt8], count: Int) -> [[UInt8]] {
        var rng = SplitMix64(state: 0x6d6f_6e74_616e_61)
        return (0..<count).map { _ in
            var bytes = seed
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                guard !bytes.isEmpty else { break }
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: i)
                default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                }
            }
            return bytes
        } + (0..<count).map { _ in (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    }

    func test_socks5HandshakeSurvivesMutatedInput() {
        let seed: [UInt8] = [0x05, 0x02, 0x00, 0x02, 0x01, 0x01, 0x61, 0x01, 0x62, 0x05, 0x01, 0x00, 0x03, 0x03, 0x61, 0x2e, 0x62, 0x00, 0x50]
        for input in mutations(of: seed, count: 3000) {
            var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
            handshake.receive(input)
            loop: for _ in 0..<8 {
                switch try? handshake.next() {
                case .authenticate?: _ = try? handshake.completeAuthentication(accepted: true)
                case .send?: continue
                default: break loop
                }
            }
        }
    }

    func test_udpDatagramDecoderSurvivesMutatedInput() {
        for input in mutations(of: [0, 0, 0, 0x03, 3, 0x61, 0x2e, 0x62, 0, 53, 1, 2], count: 3000) {
            _ = try? SOCKS5UDPDatagram.decode(input)
        }
    }

    func test_httpParserSurvivesMutatedInput() {
        let seed = Array("GET http://[::1]:80/a?b HTTP/1.1\r\nProxy-Authorization: Basic YTpi\r\nConnection: upgrade\r\n\r\n".utf8)
        for input in mutations(of: seed, count: 3000) {
            var parser = HTTPProxyRequestParser()
            parser.receive(input)
            _ = try? parser.next()
        }
        for input in mutations(of: Array("CONNECT a.b:443 HTTP/1.1\r\n\r\n".utf8), count: 3000) {
            var parser = HTTPProxyRequestParser()
            parser.receive(input)
            _ = try? parser.next()
        }
    }

    /// Whatever the proxy parsers accept becomes an EgressOpen the wire can carry (the trap of
    /// issue 6 item 7 was a parsed host the encoder could not take).
    func test_everyDestinationTheParsersAcceptEncodesAsAnEgressOpen() throws {
        let seeds = [
            "CONNECT [\(String(repeating: "a", count: 40))]:443 HTTP/1.1\r\n\r\n",
            "CONNECT \(String(repeating: "n", count: 250)).test:443 HTTP/1.1\r\n\r\n",
            "GET http://[::ffff:1.2.3.4]:8080/x HTTP/1.1\r\n\r\n",
        ]
        var accepted = 0
        for seed in seeds {
            for input in mutations(of: Array(seed.utf8), count: 2000) {
                var parser = HTTPProxyRequestParser()
                parser.receive(input)
                guard case .request(let request, _)? = try? parser.next() else { continue }
                accepted += 1
                let open = EgressMessage.open(EgressOpen(streamID: 1, transport: .tcp, address: .host(request.host), port: request.port))
                XCTAssertNoThrow(try open.encode(), "accepted host of \(request.host.utf8.count) bytes")
            }
        }
        XCTAssertGreaterThan(accepted, 100, "the mutations must reach accepted heads to test anything")
        var socksAccepted = 0
        for input in mutations(of: [0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0xff] + [UInt8](repeating: 0x61, count: 255) + [0x01, 0xbb], count: 3000) {
            var handshake = SOCKS5ServerHandshake(credentialsRequired: false)
            handshake.receive(input)
            loop: for _ in 0..<4 {
                switch try? handshake.next() {
                case .send?: continue
                case .request(let request, _)?:
                    socksAccepted += 1
                    XCTAssertNoThrow(try EgressMessage.open(EgressOpen(streamID: 1, transport: .tcp, address: request.address,
                                                                       port: request.port)).encode())
                    break loop
                default: break loop
                }
            }
        }
        XCTAssertGreaterThan(socksAccepted, 100)
    }
}
