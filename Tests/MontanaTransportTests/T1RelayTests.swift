import Foundation
import MontanaCrypto
import MontanaWire
@testable import MontanaTransport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// T1 relay-and-tag (PROTOCOL.md 2.2) against a real TLS 1.3 server (`openssl s_server`) as the
/// cover, with the pure state machines glued by this test: the client's TLS 1.3 key schedule
/// opens the real server's records for each of Chrome's three suites (so the schedule agrees
/// with OpenSSL's), the front's tag and the switch work through the real handshake, the cover's
/// session tickets are dropped as cover records, and every bound in the T1 record layer holds
/// when pushed past.
final class T1RelayTests: XCTestCase {
    static let openssl = "/usr/bin/openssl"
    static let suites: [(String, TLS13.Suite)] = [("TLS_AES_128_GCM_SHA256", .aes128GCMSHA256),
                                                   ("TLS_AES_256_GCM_SHA384", .aes256GCMSHA384),
                                                   ("TLS_CHACHA20_POLY1305_SHA256", .chacha20Poly1305SHA256)]
    var work = ""
    var servers: [Process] = []

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.openssl) else {
            throw XCTSkip("!!! openssl is not installed (apt-get install openssl): the T1 relay tests cannot run")
        }
        work = NSTemporaryDirectory() + "montana-t1-relay-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", work + "/k.pem",
                 "-out", work + "/c.pem", "-days", "1", "-subj", "/CN=cover.example"])
    }

    override func tearDown() {
        for s in servers where s.isRunning { kill(s.processIdentifier, SIGKILL); s.waitUntilExit() }
        servers = []
        if !work.isEmpty { try? FileManager.default.removeItem(atPath: work) }
        super.tearDown()
    }

    private func run(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.openssl)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw XCTSkip("!!! openssl \(args[0]) failed (\(p.terminationStatus))") }
    }

    /// `openssl s_server` offering only `suite`, on a free loopback port (stopped at tear-down).
    private func startCover(suite: String) throws -> UInt16 {
        for _ in 0..<5 {
            let port = UInt16.random(in: 20_000...60_000)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.openssl)
            p.arguments = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", work + "/c.pem", "-key", work + "/k.pem", "-tls1_3",
                           "-ciphersuites", suite, "-www", "-quiet"]
            p.standardInput = FileHandle.nullDevice; p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            servers.append(p)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline && p.isRunning {
                if let fd = connectTo(port) { close(fd); return port }
                usleep(20_000)
            }
        }
        throw XCTSkip("!!! openssl s_server did not start")
    }

    private func connectTo(_ port: UInt16) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if ok != 0 { close(fd); return nil }
        return fd
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// What arrives on `fd` within `ms` (nil: closed).
    private func receive(_ fd: Int32, ms: Int32) -> [UInt8]? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, ms) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? Array(buffer[0..<n]) : nil
    }

    final class GateBox: @unchecked Sendable {
        let lock = NIOLock()
        var gate: T1Gate
        init(_ gate: T1Gate) { self.gate = gate }
        func check(_ h: ParsedClientHello) -> T1Token.Opened? {
            lock.withLock {
                if case .token(let o) = gate.check(h, now: UInt64(Date().timeIntervalSince1970)) { return o }
                return nil
            }
        }
    }

    struct Run {
        var client: T1ClientHandshake
        var front: T1FrontSession
        var failure: T1ClientHandshake.FailureReason?
        var toClient: [UInt8] = []
        var carrierAtFront: [UInt8] = []
    }

    /// Client → front session → real cover and back until the client is established or fails (≤ 5 s).
    private func drive(cover fd: Int32, client: T1ClientHandshake, front: T1FrontSession) -> Run {
        var r = Run(client: client, front: front)
        var toFront = client.firstFlight
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !r.client.isEstablished, r.failure == nil {
            var toCover: [UInt8] = [], toClient: [UInt8] = []
            func apply(_ actions: [T1FrontSession.Action]) {
                for a in actions {
                    switch a {
                    case .toCover(let b): toCover += b
                    case .toClient(let b): toClient += b
                    case .carrier(let b): r.carrierAtFront += b
                    case .splice, .switched, .close: break
                    }
                }
            }
            if !toFront.isEmpty { apply(r.front.fromClient(toFront)); toFront = [] }
            if !toCover.isEmpty { send(fd, toCover) }
            guard let fromCover = receive(fd, ms: 100) else { break }
            if !fromCover.isEmpty { apply(r.front.fromCover(fromCover)) }
            if !toClient.isEmpty {
                do { toFront = try r.client.receive(toClient) } catch { r.failure = error }
            }
        }
        return r
    }

    private func setup(_ suite: String) throws -> (Int32, T1ClientHandshake, T1FrontSession, GateBox, T1FrontKey) {
        let port = try startCover(suite: suite)
        guard let fd = connectTo(port) else { throw XCTSkip("!!! cannot connect to s_server") }
        let key = T1FrontKey(), psk = [UInt8](repeating: 3, count: 16)
        let box = GateBox(try T1Gate(key: key, psk: psk, shortIDs: [[0x5e, 0x1f]], serverNames: ["cover.example"]))
        let hello = try T1Hello.make(serverName: "cover.example", frontPublic: key.publicKey, psk: psk, shortID: [0x5e, 0x1f],
                                     unixSeconds: UInt32(Date().timeIntervalSince1970))
        return (fd, T1ClientHandshake(hello: hello), T1FrontSession(verify: { box.check($0) }), box, key)
    }

    func testEachChromeSuiteSwitchesThroughARealCoverAndCarriesBytesBothWays() throws {
        for (name, _) in Self.suites {
            let (fd, client, front, _, _) = try setup(name)
            defer { close(fd) }
            var r = drive(cover: fd, client: client, front: front)
            XCTAssertNil(r.failure, "\(name)")
            XCTAssertTrue(r.client.isEstablished, "\(name): the client finished the cover's handshake and took the InnerReply")
            XCTAssertTrue(r.front.isSwitched, "\(name)")
            guard var cf = r.client.frames else { continue }
            // Carrier bytes both ways in T1 frames, larger than one record.
            let up = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let sealed = try cf.seal(up)
            XCTAssertEqual(sealed.count, up.count + 3 * 22, "three records of at most 16,384 bytes, 22 bytes of overhead each")
            var got: [UInt8] = []
            for chunk in stride(from: 0, to: sealed.count, by: 1000) {
                for a in r.front.fromClient(Array(sealed[chunk..<min(sealed.count, chunk + 1000)])) { if case .carrier(let b) = a { got += b } }
            }
            XCTAssertEqual(got, up, "\(name): the front opens the client's frames")
            let down = try XCTUnwrap(r.front.seal(Array("pong".utf8)))
            // The cover's post-handshake records (s_server's session tickets) arrive in the grace period.
            var coverAfter: [UInt8] = []
            let until = Date().addingTimeInterval(0.5)
            while Date() < until, let b = receive(fd, ms: 50) {
                for a in r.front.fromCover(b) { if case .toClient(let x) = a { coverAfter += x } }
            }
            XCTAssertEqual(try cf.open(coverAfter + down), Array("pong".utf8), "\(name)")
            XCTAssertGreaterThanOrEqual(cf.droppedCoverRecords, 1, "\(name): the cover's tickets were opened under its key and dropped")
        }
    }

    func testAPlainSiteIsUntaggedForEverySuite() throws {
        for (name, _) in Self.suites {
            let port = try startCover(suite: name)
            guard let fd = connectTo(port) else { return XCTFail("connect") }
            defer { close(fd) }
            let hello = try T1Hello.make(serverName: "cover.example", frontPublic: T1FrontKey().publicKey, psk: [], shortID: [1],
                                         unixSeconds: UInt32(Date().timeIntervalSince1970))
            var client = T1ClientHandshake(hello: hello)
            send(fd, client.firstFlight)
            var failure: T1ClientHandshake.FailureReason?
            let deadline = Date().addingTimeInterval(5)
            while failure == nil, Date() < deadline, let b = receive(fd, ms: 100) {
                do { _ = try client.receive(b) } catch { failure = error }
            }
            // `.untagged`: the first encrypted record opened under our handshake key without the
            // mask, so our key schedule derived the same secret as OpenSSL for this suite.
            XCTAssertEqual(failure, .untagged, "\(name)")
            XCTAssertTrue(failure?.description.contains("no Montana tag") ?? false)
        }
    }

    func testTheFrontSplicesAHelloThatIsNotATokenHolderOrThatProvesNothing() throws {
        let (fd, client, _, box, _) = try setup("TLS_AES_128_GCM_SHA256")
        defer { close(fd) }
        // No proof record: the genuine client's bytes end after its Finished → still the cover's.
        var front = T1FrontSession(verify: { box.check($0) })
        XCTAssertTrue(front.fromClient(client.firstFlight).allSatisfy { if case .toCover = $0 { return true }; return false })
        XCTAssertFalse(front.isSpliced, "a token holder is a candidate")
        // The same hello again (a replay) is spliced at once, and so is a garbage first flight.
        var replay = T1FrontSession(verify: { box.check($0) })
        XCTAssertTrue(replay.fromClient(client.firstFlight).contains(.splice))
        XCTAssertEqual(replay.spliceReason, "no_token")
        var garbage = T1FrontSession(verify: { box.check($0) })
        XCTAssertTrue(garbage.fromClient([0x16, 0x03, 0x01, 0xff, 0xff] + [UInt8](repeating: 1, count: 100)).contains(.splice))
        XCTAssertEqual(garbage.spliceReason, "malformed", "a ClientHello record over 16,384 bytes")
        // A record after the hello before the cover answered: early data → splice.
        let (_, client2, _, box2, _) = try setup("TLS_AES_128_GCM_SHA256")
        var early = T1FrontSession(verify: { box2.check($0) })
        XCTAssertTrue(early.fromClient(client2.firstFlight + [0x17, 0x03, 0x03, 0x00, 0x01, 0x00]).contains(.splice))
        XCTAssertEqual(early.spliceReason, "early_data")
        // The cover speaking first: not T1.
        var first = T1FrontSession(verify: { _ in nil })
        XCTAssertTrue(first.fromCover([0x16, 0x03, 0x03]).contains(.splice))
        XCTAssertEqual(first.spliceReason, "cover_first")
    }

    // MARK: bounds

    func testRecordReaderRefusesARecordOver16640Bytes() throws {
        var r = TLSRecordReader()
        r.append([0x17, 0x03, 0x03] + [UInt8(TLSRecordReader.maxPayload >> 8), UInt8(TLSRecordReader.maxPayload & 0xff)]
                 + [UInt8](repeating: 0, count: TLSRecordReader.maxPayload))
        XCTAssertEqual(try r.next()?.payload.count, 16_640, "the limit itself is a record")
        let over = TLSRecordReader.maxPayload + 1
        r.append([0x17, 0x03, 0x03, UInt8(over >> 8), UInt8(over & 0xff)])
        XCTAssertThrowsError(try r.next(), "16,641 bytes is refused from the header alone")
        var bad = TLSRecordReader()
        bad.append([0x42])
        XCTAssertThrowsError(try bad.next(), "not a TLS content type")
    }

    func testHandshakeAssemblerBoundsAMessageAt64KiBAndAFlightAt256KiB() throws {
        var a = HandshakeAssembler()
        try a.append([0x0b, 0x01, 0x00, 0x01] + [UInt8](repeating: 0, count: 16))   // declares 65,537 bytes
        XCTAssertThrowsError(try a.next(), "a message over 65,536 bytes")
        var ok = HandshakeAssembler()
        try ok.append([0x0b, 0x01, 0x00, 0x00] + [UInt8](repeating: 0, count: 65_536))
        XCTAssertEqual(try ok.next()?.message.count, 65_540, "65,536 is allowed")
        var flight = HandshakeAssembler()
        for _ in 0..<16 { try flight.append([UInt8](repeating: 0, count: 16_384)) }
        XCTAssertThrowsError(try flight.append([0]), "a flight over 262,144 bytes")
    }

    func testAtMost16CoverRecordsAreDroppedThenTheFrameLayerFails() throws {
        let secret = [UInt8](repeating: 1, count: 32), other = [UInt8](repeating: 2, count: 32), coverKey = [UInt8](repeating: 3, count: 32)
        let suite = TLS13.Suite.chacha20Poly1305SHA256
        var state = T1FrameState(sealer: .init(suite: suite, trafficSecret: other), opener: .init(suite: suite, trafficSecret: secret),
                                 cover: .init(suite: suite, trafficSecret: coverKey))
        var cover = TLS13.RecordCipher(suite: suite, trafficSecret: coverKey)
        var peer = TLS13.RecordCipher(suite: suite, trafficSecret: secret)
        for i in 0..<T1FrameState.maxCoverRecords {
            let ticket = try cover.seal([UInt8](repeating: 4, count: 200), type: 0x16)
            XCTAssertEqual(try state.open(ticket), [], "cover record \(i) dropped")
        }
        XCTAssertEqual(state.droppedCoverRecords, 16)
        XCTAssertEqual(try state.open(try peer.seal(Array("ok".utf8), type: 0x17)), Array("ok".utf8))
        XCTAssertThrowsError(try state.open(try cover.seal([1], type: 0x16)), "the 17th cover record is an error")
        var fresh = T1FrameState(sealer: .init(suite: suite, trafficSecret: other), opener: .init(suite: suite, trafficSecret: secret), cover: nil)
        XCTAssertThrowsError(try fresh.open([0x17, 0x03, 0x03, 0x00, 0x20] + [UInt8](repeating: 0, count: 32)), "a forged frame")
    }

    /// A loopback listener whose accept queue is full (backlog 0, one connection parked): a further
    /// connect to it stays in SYN_SENT, like a cover site that is slow to answer.
    private func stalledListener() throws -> (port: UInt16, fds: [Int32]) {
        let l = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(l, 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(l, $0, &len) } }
        let port = UInt16(bigEndian: a.sin_port)
        guard let parked = connectTo(port) else { throw XCTSkip("!!! cannot fill a loopback accept queue") }
        return (port, [l, parked])
    }

    func testClientBytesWaitingForASlowCoverStopAt64KiBAndAnUnreachableCoverCloses() throws {
        let (coverPort, fds) = try stalledListener()
        defer { fds.forEach { close($0) } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let handlers = NIOLockedValueBox<[T1FrontHandler]>([])
        let outcomes = NIOLockedValueBox<[String]>([])
        let cover = try SocketAddress(ipAddress: "127.0.0.1", port: Int(coverPort))
        let server = try ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let h = T1FrontHandler(cover: cover, verify: { _ in nil }, connectTimeout: .seconds(3),
                                           onOutcome: { o in outcomes.withLockedValue { $0.append(o) } }, onSwitch: { _ in })
                    handlers.withLockedValue { $0.append(h) }
                    try channel.pipeline.syncOperations.addHandler(h)
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? server.close().wait() }
        guard let fd = connectTo(UInt16(server.localAddress!.port!)) else { return XCTFail("connect to the front") }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        // 4 MiB offered while the cover is still connecting: the front reads at most its bound.
        let chunk = [UInt8](repeating: 0x16, count: 65_536)
        var offered = 0
        let until = Date().addingTimeInterval(1)
        while Date() < until, offered < 4 << 20 {
            let n = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offered += n } else { usleep(10_000) }
        }
        let handler = try XCTUnwrap(handlers.withLockedValue { $0.first })
        let pending = try group.next().submit { handler.pendingBytes }.wait()
        XCTAssertGreaterThanOrEqual(pending, T1FrontHandler.maxPendingToCover, "it read up to the bound (offered \(offered))")
        XCTAssertLessThanOrEqual(pending, T1FrontHandler.maxPendingToCover + 65_536, "at most one read past 64 KiB")
        // The cover never answers: after the connect timeout the visitor's connection closes.
        var closed = false
        let deadline = Date().addingTimeInterval(10)
        while !closed, Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) > 0 {
                var b = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &b, b.count, 0)
                closed = n <= 0 && !(n < 0 && errno == EAGAIN)
            }
        }
        XCTAssertTrue(closed, "the front closes when the cover cannot be reached")
        // 0x16 bytes are no ClientHello (`malformed`: a splice once the cover is up), then the cover never came.
        XCTAssertEqual(outcomes.withLockedValue { $0 }, ["malformed", "cover_unreachable"])
    }

    func testConnectorArgumentsOwnKeyOrTheAlliancesUniversalKey() throws {
        let pbk = [UInt8](repeating: 0x42, count: 32), upk = [UInt8](repeating: 0x24, count: 32)
        let universal = T1Connector.Universal(publicKey: upk, shortID: [0xaa], serverName: "cover.alliance.example")
        func endpoint(_ params: [String: String]) -> CarrierEndpoint { CarrierEndpoint(profile: .t1, host: "192.0.2.1", port: 443, params: params) }
        let own = try T1Connector.arguments(endpoint(["pbk": Hex.encode(pbk), "sid": "5e1f", "sni": "www.example.org"]), universal: universal)
        XCTAssertEqual(own.key, pbk, "a record's own key wins")
        XCTAssertEqual(own.shortID, [0x5e, 0x1f])
        let u = try T1Connector.arguments(endpoint(["mode": "universal"]), universal: universal)
        XCTAssertEqual(u.key, upk)
        XCTAssertEqual(u.shortID, [0xaa])
        XCTAssertEqual(u.sni, "cover.alliance.example")
        let named = try T1Connector.arguments(endpoint(["mode": "universal", "sid": "01", "sni": "other.example"]), universal: universal)
        XCTAssertEqual(named.shortID, [0x01])
        XCTAssertEqual(named.sni, "other.example")
        XCTAssertThrowsError(try T1Connector.arguments(endpoint(["mode": "universal"]))) {
            XCTAssertTrue("\($0)".contains("universal T1 key"), "without a subscription there is no universal key: \($0)")
        }
        XCTAssertThrowsError(try T1Connector.arguments(endpoint(["pbk": "abcd", "sid": "01", "sni": "a.example"])), "a short pbk")
        XCTAssertThrowsError(try T1Connector.arguments(endpoint(["pbk": Hex.encode(pbk), "sid": "001122334455667788", "sni": "a.example"])),
                             "a 9-byte short id")
        XCTAssertThrowsError(try T1Connector.arguments(endpoint(["pbk": Hex.encode(pbk), "sid": "01", "sni": "a b"])), "a space in the name")
    }
}
