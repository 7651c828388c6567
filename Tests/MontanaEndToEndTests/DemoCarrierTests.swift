import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The demo's carriers: with nginx and openssl installed one city (warsaw) also offers T2 behind
/// a demo nginx on loopback with a throw-away CA the demo's client trusts; the status file and the
/// banner say which city offers what. A demo whose client's ladder is only T2 (`--carriers t2`)
/// carries every circuit over T2 through warsaw, byte for byte, and /status says carrier "t2".
/// `--no-t2` (and a machine without nginx) runs T0 only and says T2 was skipped. Real processes
/// (the demo, its cities, nginx, curl), stopped by PID.
final class DemoCarrierTests: XCTestCase {
    private var demos: [DemoHarness] = []

    override func tearDown() {
        for demo in demos { demo.stop() }
        demos = []
        super.tearDown()
    }

    private func requireNginx() throws {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin"]
        guard dirs.contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/nginx") }) else {
            throw XCTSkip("nginx is not installed (apt-get install nginx-light): the demo runs T0 only")
        }
        guard dirs.contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/openssl") }) else {
            throw XCTSkip("openssl is not installed: the demo runs T0 only")
        }
    }

    private func start(_ arguments: [String]) throws -> DemoHarness {
        let demo = try DemoHarness.start(DemoHarness.Options(extraArguments: arguments))
        demos.append(demo)
        return demo
    }

    private func get(_ address: DemoStatus.Address, _ path: String) throws -> [String: Any] {
        let answer = try Curl.get("http://\(address.host):\(address.port)\(path)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: answer.stdout) as? [String: Any], "\(answer)")
    }

    private func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    func test_aT2OnlyDemoClientCarriesEveryCircuitOverT2ThroughTheT2City() throws {
        try requireNginx()
        let demo = try start(["--carriers", "t2"])
        let t2 = try XCTUnwrap(demo.status.t2, "the status file has t2")
        XCTAssertEqual(t2.state, "running", "\(t2)")
        XCTAssertEqual(t2.city, "warsaw")
        let nginx = try XCTUnwrap(t2.nginx)
        XCTAssertTrue(isAlive(nginx.pid), "nginx runs (pid \(nginx.pid))")
        let warsaw = try demo.status.city("warsaw")
        XCTAssertEqual(warsaw.carriers, ["t0", "t1", "t2"])
        for name in ["berlin", "amsterdam"] { XCTAssertEqual(try demo.status.city(name).carriers, ["t0", "t1"], name) }
        XCTAssertTrue(demo.process.stdout.contains("T2: warsaw also offers T2 behind the demo nginx https://127.0.0.1:\(nginx.port)"),
                      demo.process.outputTail())
        // nginx's other paths are an ordinary site (TLS verified with the demo's CA).
        let home = try Curl.run(["--cacert", try XCTUnwrap(t2.ca), "--resolve", "\(try XCTUnwrap(t2.hostName)):\(nginx.port):127.0.0.1",
                                 "https://\(t2.hostName!):\(nginx.port)/"])
        XCTAssertTrue(home.succeeded && home.stdoutText.contains("It works"), "\(home)")

        let size = 3 << 20
        let expected = demoSitePattern(count: size)
        for user in ["country-de", "country-nl"] {
            let result = try demo.curlSOCKS("\(demo.siteURL)/bytes/\(size)", user: user, timeout: 60)
            XCTAssertTrue(result.succeeded, "\(user): \(result) [\(demo.liveness)]")
            XCTAssertEqual(result.stdout.count, size, user)
            XCTAssertTrue([UInt8](result.stdout) == expected, "\(user): the bytes through T2 are the site's pattern")
        }
        // The client's status snapshot is refreshed once a second: wait for both sessions.
        var circuits: [[String: Any]] = []
        _ = poll(timeout: 10, interval: 0.2) {
            circuits = (try? demo.clientStatusCircuits()) ?? []
            return circuits.count >= 2
        }
        XCTAssertEqual(circuits.count, 2, "one circuit per exit: \(circuits)")
        let warsawPrefix = String(warsaw.nodeID.prefix(6))
        for c in circuits {
            XCTAssertEqual(c["carrier"] as? String, "t2", "\(c)")
            XCTAssertTrue((c["front"] as? String ?? "").contains(warsawPrefix), "only warsaw offers T2, so it fronts every circuit: \(c)")
        }
        let carriers = try XCTUnwrap(try get(warsaw.admin, "/status")["carriers"] as? [String: Any])
        let ws = try XCTUnwrap(carriers["t2"] as? [String: Any], "\(carriers)")
        XCTAssertEqual(ws["tls"] as? String, "proxy", "\(ws)")
        XCTAssertEqual(ws["endpoint"] as? String, "127.0.0.1:\(nginx.port)", "the record advertises the demo nginx: \(ws)")
        XCTAssertGreaterThanOrEqual(ws["connections"] as? Int ?? 0, 1, "warsaw upgraded WebSocket carriers: \(ws)")

        demo.stop()
        let gone = poll(timeout: 5, interval: 0.1) { !self.isAlive(nginx.pid) }
        XCTAssertTrue(gone, "nginx (pid \(nginx.pid)) stops with the demo")
    }

    func test_noT2RunsT0AndT1AndSaysT2WasSkipped() throws {
        let demo = try start(["--no-t2"])
        let t2 = try XCTUnwrap(demo.status.t2)
        XCTAssertEqual(t2.state, "skipped")
        XCTAssertEqual(t2.reason, "off (--no-t2)")
        for city in demo.status.cities { XCTAssertEqual(city.carriers, ["t0", "t1"], city.name) }
        XCTAssertTrue(demo.process.stdout.contains("T2: off (--no-t2), skipped"), demo.process.outputTail())
        let result = try demo.curlSOCKS("\(demo.siteURL)/whoami", user: "country-de")
        XCTAssertTrue(result.succeeded, "\(result)")
        for c in try demo.clientStatusCircuits() { XCTAssertEqual(c["carrier"] as? String, "t1", "the default ladder starts at T1: \(c)") }
    }
}
