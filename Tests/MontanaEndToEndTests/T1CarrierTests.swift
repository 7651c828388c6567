import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// T1, relay-and-tag (PROTOCOL.md 2.2), with a real nginx TLS 1.3 site as the cover, real
/// `curl` and `openssl s_client` as the probers, and real `montana` processes: a client whose
/// ladder is only T1 downloads through the front; every prober, a replayed captured hello, a
/// stale or unknown-short-id hello gets the cover's own certificate and flight; a client with
/// the wrong key, or facing the cover with no front (a fake front), refuses it and records why.
final class T1CarrierTests: CarrierTestCase {
    static let coverName = "cover.example"

    struct Front {
        let node: LoneExitNode
        let t1Port: Int
        let coverPort: Int
        let ca: String
        let publicKey: String
        let shortID: String
        let work: String
    }

    /// nginx (scripts/nginx/t1-cover.conf.template) as the cover on loopback, and a node with
    /// `[carriers.tls]` relaying to it, its T1 key made by `montana keygen t1`.
    private func startFront(_ name: String) throws -> Front {
        try requireNginx()
        let work = try Paths.makeTemporaryDirectory("montana-e2e-t1-\(name)-")
        cleanups.append { Paths.removeTemporaryDirectory(work) }
        let (ca, cert, key) = try certificates(in: work, name: Self.coverName)
        let prefix = (work as NSString).appendingPathComponent("cover")
        try FileManager.default.createDirectory(atPath: prefix + "/html", withIntermediateDirectories: true)
        try "<!DOCTYPE html>\n<html><body><h1>The cover site</h1></body></html>\n"
            .write(toFile: prefix + "/html/index.html", atomically: true, encoding: .utf8)
        let coverPort = try Net.freePort()
        let template = try String(contentsOf: Paths.repositoryRoot.appendingPathComponent("scripts/nginx/t1-cover.conf.template"), encoding: .utf8)
        let conf = template.replacingOccurrences(of: "@PREFIX@", with: prefix)
            .replacingOccurrences(of: "@LISTEN@", with: "127.0.0.1:\(coverPort)")
            .replacingOccurrences(of: "@CERT@", with: cert).replacingOccurrences(of: "@KEY@", with: key)
            .replacingOccurrences(of: "@NAME@", with: Self.coverName)
        _ = try startNginx(conf: conf, prefix: prefix, port: coverPort, dir: work)

        let keygen = try ChildProcess(name: "keygen-t1", executable: try Paths.montana(), arguments: ["keygen", "t1", "--out", work], logDirectory: work)
        XCTAssertEqual(keygen.waitForExit(timeout: 30), 0, keygen.outputTail())
        let pub = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work + "/t1.pub.json"))) as? [String: Any]
        let publicKey = try XCTUnwrap(pub?["x25519_pk"] as? String, "t1.pub.json has the public key")
        XCTAssertFalse(keygen.stdout.contains(try String(contentsOfFile: work + "/t1.key", encoding: .utf8).suffix(20)), "the secret is never printed")

        let t1Port = try Net.freePort()
        let shortID = "5e1f00aa"
        let node = try LoneExitNode.start(name: "t1-\(name)", extraConfig: """
        [carriers.tls]
        listen = "127.0.0.1:\(t1Port)"
        cover = "127.0.0.1:\(coverPort)"
        sni = ["\(Self.coverName)"]
        key = "\(work)/t1.key"
        short_ids = ["\(shortID)"]
        """)
        cleanups.append { node.stop() }
        XCTAssertTrue(Net.waitForListener(t1Port, timeout: 15, alive: { node.process.isRunning }), node.diagnostics())
        return Front(node: node, t1Port: t1Port, coverPort: coverPort, ca: ca, publicKey: publicKey, shortID: shortID, work: work)
    }

    private func t1Endpoint(port: Int, pbk: String, sid: String) -> String {
        "{ profile = \"t1\", endpoint = \"127.0.0.1:\(port)\", params = \"pbk=\(pbk)&sid=\(sid)&sni=\(Self.coverName)\" }"
    }

    private func outcomes(_ front: Front) throws -> [String: Int] {
        try carrierStatus(front.node, "t1")["outcomes"] as? [String: Int] ?? [:]
    }

    func test_aT1OnlyClientDownloadsWhileCurlAndOpensslSeeTheCoverSite() throws {
        let front = try startFront("download")
        let t1 = try carrierStatus(front.node, "t1")
        XCTAssertEqual(t1["state"] as? String, "up", "\(t1)")
        XCTAssertEqual(t1["endpoint"] as? String, "127.0.0.1:\(front.t1Port)", "\(t1)")

        // Probers: the front is the cover site, certificate verified against the cover's CA.
        let page = try Curl.run(["--cacert", front.ca, "--resolve", "\(Self.coverName):\(front.t1Port):127.0.0.1",
                                 "-D", "-", "https://\(Self.coverName):\(front.t1Port)/"])
        XCTAssertTrue(page.succeeded && page.stdoutText.contains("The cover site"), "curl through the front gets the cover's page: \(page)")
        XCTAssertTrue(page.stdoutText.hasPrefix("HTTP/2 200"), "h2 from the cover itself: \(page)")
        let direct = try Curl.run(["--cacert", front.ca, "--resolve", "\(Self.coverName):\(front.coverPort):127.0.0.1",
                                   "https://\(Self.coverName):\(front.coverPort)/"])
        XCTAssertEqual(direct.stdoutText, page.stdoutText.components(separatedBy: "\r\n\r\n").last, "the same page as the cover's own")
        let sClient = try ChildProcess(name: "s_client", executable: Self.openssl,
                                       arguments: ["s_client", "-connect", "127.0.0.1:\(front.t1Port)", "-servername", Self.coverName,
                                                   "-CAfile", front.ca, "-verify_return_error", "-tls1_3", "-alpn", "h2"],
                                       logDirectory: front.work)
        XCTAssertEqual(sClient.waitForExit(timeout: 20), 0, sClient.outputTail())
        XCTAssertTrue(sClient.stdout.contains("Verify return code: 0 (ok)"), sClient.outputTail())
        XCTAssertTrue(sClient.stdout.contains("CN=\(Self.coverName)") || sClient.stdout.contains("CN = \(Self.coverName)"), sClient.outputTail())
        XCTAssertTrue(sClient.stdout.contains("ALPN protocol: h2"), sClient.outputTail())
        var o = try outcomes(front)
        XCTAssertEqual(o["switched"], nil, "no prober was switched: \(o)")
        XCTAssertGreaterThanOrEqual(o["no_token"] ?? 0, 2, "curl and openssl stayed with the cover: \(o)")

        let t0Before = try carrierStatus(front.node, "t0")["connections"] as? Int ?? -1
        let (client, socks, admin) = try startCarrierClient("t1-client", node: front.node, carriers: ["t1"],
                                                            endpoints: [t1Endpoint(port: front.t1Port, pbk: front.publicKey, sid: front.shortID)])
        XCTAssertTrue(Net.waitForListener(socks, timeout: 30, alive: { client.isRunning }), client.outputTail())
        try downloadBlob(socks: socks, admin: admin, carrier: "t1", label: "T1 through the cover relay") {
            "\(client.outputTail())\n\(front.node.diagnostics())"
        }
        o = try outcomes(front)
        XCTAssertGreaterThanOrEqual(o["switched"] ?? 0, 1, "\(o)")
        XCTAssertEqual(try carrierStatus(front.node, "t0")["connections"] as? Int, t0Before, "the client never used T0")
        let metrics = try Curl.get("http://127.0.0.1:\(front.node.city.admin.port)/metrics").stdoutText
        XCTAssertTrue(metrics.contains("montana_t1_connections_total{outcome=\"switched\"}"), "outcomes are a metric")
        // The cover served the probers' pages and also saw the client's real handshake.
        let access = (try? String(contentsOfFile: front.work + "/cover/access.log", encoding: .utf8)) ?? ""
        XCTAssertGreaterThanOrEqual(access.components(separatedBy: "GET / HTTP/2.0\" 200").count - 1, 2, access)
    }

    /// The records (content type, length) of a TLS byte stream, as far as it is whole.
    private func records(_ bytes: [UInt8]) -> [(type: UInt8, length: Int)] {
        var out: [(UInt8, Int)] = []
        var i = 0
        while i + 5 <= bytes.count {
            let n = Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            guard i + 5 + n <= bytes.count else { break }
            out.append((bytes[i], n))
            i += 5 + n
        }
        return out
    }

    /// The server's first flight answering `hello` at `port`: its records until 1.5 s of quiet.
    private func firstFlight(port: Int, hello: [UInt8]) throws -> [(type: UInt8, length: Int)] {
        let exchange = try Net.exchange(port: port, send: hello, window: 5, stopAfter: 1, settle: 1.5)
        return records(exchange.received)
    }

    /// Same record types, lengths within `slack` (an ECDSA signature's DER length varies by a byte or two).
    private func sameShape(_ a: [(type: UInt8, length: Int)], _ b: [(type: UInt8, length: Int)], slack: Int = 2) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.type == $1.type && abs($0.length - $1.length) <= slack }
    }

    private func hello(_ front: Front, pbk: String? = nil, sid: String? = nil, seconds: UInt32? = nil) throws -> [UInt8] {
        let now = UInt32(Date().timeIntervalSince1970)
        return try T1Hello.make(serverName: Self.coverName, frontPublic: Hex.decode(pbk ?? front.publicKey)!, psk: [],
                                shortID: Hex.decode(sid ?? front.shortID)!, unixSeconds: seconds ?? now).record
    }

    func test_aReplayedStaleOrUnknownHelloGetsTheCoversOwnFlight() throws {
        let front = try startFront("prober")
        let captured = try hello(front)
        let viaCover = try firstFlight(port: front.coverPort, hello: captured)
        XCTAssertGreaterThanOrEqual(viaCover.count, 3, "the cover answers: ServerHello, CCS, encrypted records: \(viaCover)")
        XCTAssertEqual(viaCover.first?.type, 22)

        // First use: a token holder. The front tags a record but changes no size.
        let genuine = try firstFlight(port: front.t1Port, hello: captured)
        XCTAssertTrue(sameShape(genuine, viaCover), "the first flight's record sizes equal the cover's: \(genuine) vs \(viaCover)")
        // The active prober replays the captured hello: the cover's flight, and `replay` counted.
        let replayed = try firstFlight(port: front.t1Port, hello: captured)
        XCTAssertTrue(sameShape(replayed, viaCover), "a replay gets the cover: \(replayed) vs \(viaCover)")
        let stale = try firstFlight(port: front.t1Port, hello: try hello(front, seconds: UInt32(Date().timeIntervalSince1970) - 3600))
        XCTAssertTrue(sameShape(stale, viaCover), "\(stale) vs \(viaCover)")
        let unknown = try firstFlight(port: front.t1Port, hello: try hello(front, sid: "0badc0de"))
        XCTAssertTrue(sameShape(unknown, viaCover), "\(unknown) vs \(viaCover)")
        let wrongKey = try firstFlight(port: front.t1Port, hello: try hello(front, pbk: Hex.encode([UInt8](repeating: 9, count: 32))))
        XCTAssertTrue(sameShape(wrongKey, viaCover), "\(wrongKey) vs \(viaCover)")
        let o = try outcomes(front)
        XCTAssertEqual(o["replay"], 1, "\(o)")
        XCTAssertEqual(o["stale"], 1, "\(o)")
        XCTAssertEqual(o["short_id"], 1, "\(o)")
        XCTAssertEqual(o["no_token"], 1, "a hello for another key has no token for this front: \(o)")
        // The genuine one proved nothing (no Finished, no proof record): it stayed with the cover too.
        XCTAssertEqual(o["switched"], nil, "\(o)")
    }

    func test_aWrongKeyOrAFakeFrontIsRefusedAndRecordedAndTheLadderMovesOn() throws {
        let front = try startFront("refuse")
        let (server, digest, dir) = try fileServer(prefix: "montana-e2e-t1-site-")
        let wrong = Hex.encode((try T1Key(privateKey: [UInt8](repeating: 7, count: 32))).publicKey)
        // Two T1 endpoints, both answered by the real cover site with no valid tag: the front with
        // a wrong key in the record, and the cover dialled directly (a fake front). Then T0.
        for (name, endpoint) in [("t1-wrong-key", t1Endpoint(port: front.t1Port, pbk: wrong, sid: front.shortID)),
                                 ("t1-fake-front", t1Endpoint(port: front.coverPort, pbk: front.publicKey, sid: front.shortID))] {
            let (client, socks, admin) = try startCarrierClient(name, node: front.node, carriers: ["t1", "t0"], endpoints: [endpoint])
            XCTAssertTrue(Net.waitForListener(socks, timeout: 30, alive: { client.isRunning }), client.outputTail())
            let out = (dir as NSString).appendingPathComponent("\(name).bin")
            let result = try download(socks: socks, url: "\(server.baseURL)/blob.bin", to: out)
            XCTAssertTrue(result.succeeded, "\(name): \(result)\n\(client.outputTail())")
            XCTAssertEqual(TestFiles.digest(out).sha256, digest, name)
            XCTAssertEqual(try circuitsWhenShown(admin).first?["carrier"] as? String, "t0", name)
            let observed = try XCTUnwrap(try frontObservations(admin).first, "\(name): no reachability entry")
            let error = (observed["profile_errors"] as? [String: String])?["t1"] ?? ""
            XCTAssertTrue(error.contains("no Montana tag"), "\(name): the refusal is recorded: \(observed)")
            XCTAssertEqual(observed["working_profile"] as? String, "t0", "\(name): \(observed)")
            client.stop(grace: 5)
        }
        XCTAssertEqual(try outcomes(front)["switched"], nil, "nobody was switched")
    }
}
