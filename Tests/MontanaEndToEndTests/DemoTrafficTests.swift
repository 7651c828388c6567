import Foundation
import XCTest

/// Traffic through one shared default demo (exits allow loopback so local sites work):
/// downloads, parallel connections, metrics, and what the nodes' logs hold afterwards.
final class DemoTrafficTests: XCTestCase {
    nonisolated(unsafe) private static var demo: DemoHarness?
    nonisolated(unsafe) private static var files: FileServer?
    nonisolated(unsafe) private static var uploads: UploadServer?
    nonisolated(unsafe) private static var workDirectory: String?
    nonisolated(unsafe) private static var digests: [String: [UInt8]] = [:]
    nonisolated(unsafe) private static var setupError: (any Error)?

    /// Sizes around the interesting boundaries: empty, one byte, one yamux/egress frame and
    /// one past it, a window's worth several times over, and a long transfer.
    static let fileSizes: [(String, Int)] = [
        ("empty.bin", 0), ("one.bin", 1), ("frame-minus-one.bin", 65535), ("frame.bin", 65536),
        ("one-mib.bin", 1 << 20), ("sixty-four-mib.bin", 64 << 20),
    ]

    override class func setUp() {
        super.setUp()
        do {
            let work = try Paths.makeTemporaryDirectory("montana-e2e-traffic")
            workDirectory = work
            let served = (work as NSString).appendingPathComponent("served")
            try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
            for (name, size) in fileSizes {
                digests[name] = try TestFiles.writeRandom(name, size: size, in: served)
            }
            files = try FileServer(serving: served, logDirectory: work)
            uploads = try UploadServer(logDirectory: work)
            demo = try DemoHarness.start()
        } catch {
            setupError = error
        }
    }

    override class func tearDown() {
        demo?.stop()
        files?.stop()
        uploads?.stop()
        demo = nil
        files = nil
        uploads = nil
        Paths.removeTemporaryDirectory(workDirectory)
        super.tearDown()
    }

    private func running() throws -> (DemoHarness, FileServer, String) {
        if let error = Self.setupError { throw error }
        guard let demo = Self.demo, let files = Self.files, let work = Self.workDirectory else {
            throw E2EError("the shared demo is not running")
        }
        return (demo, files, work)
    }

    func test_udpAssociateRelaysDatagramsThroughEachExit() throws {
        let (demo, _, work) = try running()
        let script = try XCTUnwrap(Bundle.module.path(forResource: "udp_probe", ofType: "py", inDirectory: "Resources"))
        for user in ["", "country-de", "country-nl"] {
            let probe = try ChildProcess(name: "udp-probe-\(user.isEmpty ? "auto" : user)", executable: "/usr/bin/python3",
                                         arguments: [script, "\(demo.socksPort)"] + (user.isEmpty ? [] : [user]), logDirectory: work)
            let status = probe.waitForExit(timeout: 30)
            if status == nil { probe.stop() }
            XCTAssertEqual(status, 0, "UDP through \(user.isEmpty ? "the automatic exit" : user): \(probe.outputTail())")
            XCTAssertTrue(probe.stdout.contains("udp ok 20"), probe.outputTail())
        }
    }

    func test_downloadsThroughFrontAndExitAreByteIdentical() throws {
        let (demo, files, work) = try running()
        let downloads = (work as NSString).appendingPathComponent("downloads")
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
        let routes: [(String, [String])] = [
            ("socks-de", Curl.socks(demo.socksPort, user: "country-de")),
            ("socks-nl", Curl.socks(demo.socksPort, user: "country-nl")),
            ("http", Curl.httpProxy(demo.httpPort)),
        ]
        var failed = false
        for (route, proxy) in routes {
            for (name, size) in Self.fileSizes {
                let out = (downloads as NSString).appendingPathComponent("\(route)-\(name)")
                let result = try Curl.run(proxy + ["--fail", "-w", "%{http_code}", "-o", out, "\(files.baseURL)/\(name)"],
                                          timeout: 120)
                XCTAssertTrue(result.succeeded, "\(route) \(name): \(result) [\(demo.liveness)]")
                XCTAssertEqual(result.stdoutText, "200", "\(route) \(name): \(result)")
                let got = TestFiles.digest(out)
                if !result.succeeded || got.size != size { failed = true }
                XCTAssertEqual(got.size, size, "\(route) \(name): size differs")
                XCTAssertEqual(hex(got.sha256), hex(Self.digests[name] ?? []), "\(route) \(name): SHA-256 differs")
                try? FileManager.default.removeItem(atPath: out)
            }
        }
        if failed { print("diagnostics for the failed downloads:\n\(demo.diagnostics())") }
    }

    func test_uploadsThroughFrontAndExitAreByteIdentical() throws {
        let (demo, files, _) = try running()
        guard let uploads = Self.uploads else { throw E2EError("the upload sink is not running") }
        let routes: [(String, [String])] = [
            ("socks-de", Curl.socks(demo.socksPort, user: "country-de")),
            ("http-nl", Curl.httpProxy(demo.httpPort, user: "country-nl")),
        ]
        for (route, proxy) in routes {
            for name in ["one.bin", "one-mib.bin", "sixty-four-mib.bin"] {
                let path = (files.directory as NSString).appendingPathComponent(name)
                let size = Self.fileSizes.first { $0.0 == name }!.1
                // A lost upload byte leaves the sink waiting for the rest: bounded by the timeout.
                let result = try Curl.run(proxy + ["--fail", "--upload-file", path, uploads.url], timeout: 20)
                let answer = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
                let expected = "\(hex(Self.digests[name] ?? [])) \(size)"
                XCTAssertTrue(result.succeeded, "\(route) upload \(name): \(result) [\(demo.liveness)]")
                XCTAssertEqual(answer, expected, "\(route) upload \(name): the sink's SHA-256 and length of what arrived")
                if answer != expected { break } // the larger files would only fail the same way, slower
            }
        }
    }

    /// The demo's cities are universal-key T1 fronts relaying to the demo's cover site: the
    /// client's circuits ride T1 (its default ladder starts there), and anyone else connecting to
    /// a city's T1 port gets the cover site.
    func test_circuitsRideT1AndAProberAtTheT1PortSeesTheCoverSite() throws {
        let (demo, files, _) = try running()
        let result = try Curl.run(Curl.socks(demo.socksPort, user: "country-de") + ["--fail", "-o", "/dev/null", "\(files.baseURL)/one-mib.bin"])
        XCTAssertTrue(result.succeeded, "\(result)")
        let admin = try XCTUnwrap(demo.status.client.admin, "the demo status names the client's admin port")
        var circuits: [[String: Any]] = []
        _ = poll(timeout: 10, interval: 0.2) {
            let doc = (try? Curl.get("http://\(admin.host):\(admin.port)/status")).flatMap { try? JSONSerialization.jsonObject(with: $0.stdout) as? [String: Any] }
            circuits = doc?["circuits"] as? [[String: Any]] ?? []
            return !circuits.isEmpty
        }
        XCTAssertFalse(circuits.isEmpty)
        for c in circuits { XCTAssertEqual(c["carrier"] as? String, "t1", "\(c)") }
        let cover = try XCTUnwrap(demo.status.cover, "the demo status names the cover site")
        var switched = 0
        for city in demo.status.cities {
            let t1 = try XCTUnwrap(city.t1, "\(city.name) has a T1 port")
            let page = try Curl.run(["-k", "--resolve", "\(cover.name):\(t1.port):\(t1.host)", "https://\(cover.name):\(t1.port)/"])
            XCTAssertTrue(page.succeeded && page.stdoutText.contains("<h1>\(cover.name)</h1>"), "\(city.name): \(page)")
            let doc = try JSONSerialization.jsonObject(with: try Curl.get("http://\(city.admin.host):\(city.admin.port)/status").stdout) as? [String: Any]
            let status = (doc?["carriers"] as? [String: Any])?["t1"] as? [String: Any] ?? [:]
            XCTAssertEqual(status["key_mode"] as? String, "universal", "\(city.name): \(status)")
            XCTAssertGreaterThanOrEqual((status["outcomes"] as? [String: Int])?["no_token"] ?? 0, 1, "\(city.name): curl stayed with the cover: \(status)")
            switched += status["switched"] as? Int ?? 0
        }
        XCTAssertGreaterThanOrEqual(switched, 1, "the client's carriers were switched at some city")
    }

    func test_hundredParallelConnectionsShareOneSession() throws {
        let (demo, _, work) = try running()
        let downloads = (work as NSString).appendingPathComponent("parallel")
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
        let sizes = (0..<100).map { 1000 + $0 * 1237 }
        let pattern = demoSitePattern(count: sizes.max()!)
        var arguments = Curl.socks(demo.socksPort, user: "country-nl")
            + ["--parallel", "--parallel-max", "100", "--parallel-immediate", "--fail", "-w", "%{http_code}\\n"]
        for (i, size) in sizes.enumerated() {
            arguments += ["-o", (downloads as NSString).appendingPathComponent("\(i).bin"), "\(demo.siteURL)/bytes/\(size)"]
        }
        let result = try Curl.run(arguments, timeout: 90)
        XCTAssertTrue(result.succeeded, "\(result)\n\(demo.diagnostics())")
        let codes = result.stdoutText.split(separator: "\n")
        XCTAssertEqual(codes.count, 100, "one status line per transfer: \(result.stdoutText)")
        XCTAssertTrue(codes.allSatisfy { $0 == "200" }, "every transfer 200: \(result.stdoutText)")
        var broken: [String] = []
        for (i, size) in sizes.enumerated() {
            let data = FileManager.default.contents(atPath: (downloads as NSString).appendingPathComponent("\(i).bin")) ?? Data()
            if data.count != size || !data.elementsEqual(pattern[0..<size]) { broken.append("#\(i) (\(data.count)/\(size) bytes)") }
        }
        XCTAssertTrue(broken.isEmpty, "transfers not byte-identical: \(broken)")

        let exit = try demo.status.exit(country: "NL")
        let metrics = try PrometheusText.scrape(exit)
        // Egress sessions only: the client also measures each exit once with a control session,
        // and members' gossip and attestation sessions are counted apart.
        let sessions = metrics.value("montana_egress_sessions_total")
        XCTAssertNotNil(sessions, "\(exit.name) exposes no montana_egress_sessions_total:\n\(metrics)")
        XCTAssertLessThanOrEqual(sessions ?? .infinity, 1,
                                 "100 connections to one exit should share one egress session; "
                                 + "\(exit.name) /metrics reads \(metrics.lines("montana_egress_sessions_total")), "
                                 + "\(metrics.lines("montana_streams_total"))")
        XCTAssertGreaterThanOrEqual(metrics.value("montana_streams_total") ?? 0, 100,
                                    "\(exit.name): \(metrics.lines("montana_streams_total"))")
    }

    /// Exits write per-account totals to SQLite every 10 s (Node.swift); 10 s plus 5 s of slack.
    static let accountingFlushWait: TimeInterval = 15

    /// An exit's `/status` egress section: (accounts stored, bytes_down including unflushed).
    private func egressStatus(_ exit: DemoStatus.City) throws -> (accounts: Int?, bytesDown: Int?, text: String) {
        let status = try Curl.get(exit.metricsURL.replacingOccurrences(of: "/metrics", with: "/status"))
        let json = try JSONSerialization.jsonObject(with: Data(status.stdoutText.utf8)) as? [String: Any]
        let egress = json?["egress"] as? [String: Any]
        return (egress?["accounts"] as? Int, egress?["bytes_down"] as? Int, status.stdoutText)
    }

    func test_metricsAreExposedOnTheAdminPort() throws {
        let (demo, _, _) = try running()
        let before = try Dictionary(uniqueKeysWithValues: demo.status.exits.map { ($0.name, try egressStatus($0).bytesDown ?? 0) })
        for country in ["de", "nl"] {
            let result = try demo.curlSOCKS("\(demo.siteURL)/", user: "country-\(country)", extra: ["--fail"])
            XCTAssertTrue(result.succeeded, "\(result)\n\(demo.diagnostics())")
        }
        let scraped = try Dictionary(uniqueKeysWithValues: demo.status.cities.map { ($0.name, try PrometheusText.scrape($0)) })
        for exit in demo.status.exits {
            let metrics = scraped[exit.name]!
            for name in ["montana_sessions_total", "montana_bytes_egress_total", "montana_circuits_total"] {
                XCTAssertTrue(metrics.has(name), "\(exit.name) /metrics lacks \(name):\n\(metrics)")
            }
            XCTAssertGreaterThan(metrics.value("montana_bytes_egress_total") ?? 0, 0,
                                 "\(exit.name) carried a fetch: \(metrics.lines("montana_bytes_egress_total"))")
            // Some other front relayed the circuit to this exit.
            let relays = demo.status.cities.filter { $0.isFront && $0.name != exit.name }
            let relayed = relays.map { ($0.name, scraped[$0.name]!.value("montana_bytes_relayed_total") ?? 0) }
            XCTAssertTrue(relayed.contains { $0.1 > 0 },
                          "a front other than \(exit.name) relayed bytes: montana_bytes_relayed_total = \(relayed)")
            // /status reports the per-account totals kept for accounting (sums only). Every
            // fetch in this demo comes from its one client account: exactly one row once flushed.
            var last = try egressStatus(exit)
            XCTAssertGreaterThan(last.bytesDown ?? 0, before[exit.name] ?? 0,
                                 "\(exit.name)'s bytes_down grew with this test's fetch: \(last.text)")
            _ = try poll(timeout: Self.accountingFlushWait, interval: 0.5) {
                last = try egressStatus(exit)
                return last.accounts == 1
            }
            XCTAssertEqual(last.accounts, 1, "\(exit.name) stores totals for the demo client's one account: \(last.text)")
        }
    }

    /// Neither destinations (site ports, paths, file names) nor the client's address and ports.
    func test_nodeLogsHoldNoClientAddressesOrDestinations() throws {
        let (demo, files, _) = try running()
        let sitePath = "/bytes/31337"
        let fileName = "one.bin"
        for user in ["country-de", "country-nl"] {
            for url in ["\(demo.siteURL)\(sitePath)", "\(files.baseURL)/\(fileName)"] {
                let result = try demo.curlSOCKS(url, user: user, extra: ["--fail", "-o", "/dev/null"])
                XCTAssertTrue(result.succeeded, "\(result)")
            }
            let viaHTTP = try demo.curlHTTP("\(demo.siteURL)\(sitePath)", user: user, extra: ["--fail", "-o", "/dev/null"])
            XCTAssertTrue(viaHTTP.succeeded, "\(viaHTTP)")
        }
        // The client's own address: its source (127.0.1.1 in the demo) and the ephemeral ports
        // of its carriers to the fronts, as the kernel shows them (the nodes saw exactly these).
        let clientSource = "127.0.1.1"
        let transitPorts = demo.status.carrierPorts
        let carriers = ProcNetTCP.connections(from: clientSource, toPorts: transitPorts)
        XCTAssertFalse(carriers.isEmpty, "the demo client holds carriers from \(clientSource): \(ProcNetTCP.sockets().filter { transitPorts.contains($0.remotePort) })")
        var forbidden = [":\(demo.status.site.port)", ":\(files.port)", sitePath, fileName, clientSource]
        forbidden += carriers.map { ":\($0.localPort)" }
        for city in demo.status.cities {
            let log = try String(contentsOfFile: city.log, encoding: .utf8)
            XCTAssertFalse(log.isEmpty, "\(city.name) wrote no log at all (\(city.log))")
            for needle in forbidden {
                let lines = log.split(separator: "\n").filter { $0.contains(needle) }
                XCTAssertTrue(lines.isEmpty, "\(city.name)'s log names a destination or the client (\"\(needle)\"): \(lines.prefix(3))")
            }
        }
    }
}
