import Foundation
import MontanaCrypto
import XCTest

/// What the carrier E2E suites (T2, T3) share: cleanups run in reverse at tear-down, a node's or
/// client's `/status`, a file server with a 2 MiB random blob, a download through a client's
/// SOCKS port, and the client's circuits once its status snapshot shows one.
class CarrierTestCase: XCTestCase {
    static let fetchTimeout: TimeInterval = 30

    var cleanups: [() -> Void] = []

    override func tearDown() {
        for c in cleanups.reversed() { c() }
        cleanups = []
        super.tearDown()
    }

    func status(_ port: Int) throws -> [String: Any] {
        let result = try Curl.get("http://127.0.0.1:\(port)/status")
        guard result.succeeded, let doc = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] else {
            throw E2EError("no /status on \(port): \(result)")
        }
        return doc
    }

    /// A real file server (python http.server) with `blob.bin` (2 MiB random): server, SHA-256, dir.
    func fileServer(prefix: String) throws -> (FileServer, [UInt8], String) {
        let dir = try Paths.makeTemporaryDirectory(prefix)
        cleanups.append { Paths.removeTemporaryDirectory(dir) }
        let digest = try TestFiles.writeRandom("blob.bin", size: 2 * 1_048_576, in: dir)
        let server = try FileServer(serving: dir, logDirectory: dir)
        cleanups.append { server.stop() }
        return (server, digest, dir)
    }

    func download(socks: Int, url: String, to path: String) throws -> CurlResult {
        try? FileManager.default.removeItem(atPath: path)
        return try Curl.run(Curl.socks(socks) + ["--fail", "-o", path, url], timeout: Self.fetchTimeout)
    }

    /// 2 MiB from a fresh file server through the client's SOCKS port, byte for byte, timed and
    /// printed as `label`; then the client's circuit must ride `carrier`.
    func downloadBlob(socks: Int, admin: Int, carrier: String, label: String, diagnostics: () -> String) throws {
        let (server, digest, dir) = try fileServer(prefix: "montana-e2e-\(carrier)-site-")
        let out = (dir as NSString).appendingPathComponent("got.bin")
        let started = Date()
        let result = try download(socks: socks, url: "\(server.baseURL)/blob.bin", to: out)
        let seconds = Date().timeIntervalSince(started)
        XCTAssertTrue(result.succeeded, "\(result)\n\(diagnostics())")
        XCTAssertEqual(TestFiles.digest(out).sha256, digest, "2 MiB \(label), byte for byte")
        print("\(label): 2 MiB in \(String(format: "%.2f", seconds)) s")
        let circuits = try circuitsWhenShown(admin)
        XCTAssertEqual(circuits.first?["carrier"] as? String, carrier, "\(circuits)")
    }

    /// The client's `/status` circuits once its once-a-second snapshot shows one (at most 10 s).
    func circuitsWhenShown(_ admin: Int) throws -> [[String: Any]] {
        var circuits: [[String: Any]] = []
        _ = try poll(timeout: 10, interval: 0.2) {
            circuits = try status(admin)["circuits"] as? [[String: Any]] ?? []
            return !circuits.isEmpty
        }
        return circuits
    }

    /// A `montana client` whose only member is `node` (front + exit, its own front) with the
    /// ladder `carriers` and the member's extra carrier endpoints `endpoints` (TOML inline tables);
    /// `extra` goes into `[client]`. Stopped by PID at tear-down.
    func startCarrierClient(_ name: String, node: LoneExitNode, carriers: [String], endpoints: [String], extra: String = "")
        throws -> (client: ChildProcess, socks: Int, admin: Int) {
        let dir = try Paths.makeTemporaryDirectory("montana-e2e-\(name)-")
        cleanups.append { Paths.removeTemporaryDirectory(dir) }
        let account = try IdentityKey.generate()
        try KeyFile(kind: .account, seed: account.seed).write(to: (dir as NSString).appendingPathComponent("account.key"))
        let socks = try Net.freePort(), admin = try Net.freePort()
        let config = """
        [client]
        account_key = "account.key"
        socks = "127.0.0.1:\(socks)"
        admin = "127.0.0.1:\(admin)"
        exit_as_front = true
        probe_interval_seconds = 0
        carriers = [\(carriers.map { "\"\($0)\"" }.joined(separator: ", "))]
        \(extra)

        [[members]]
        node_id = "\(node.city.nodeID)"
        kem_pk = "\(node.city.kemPK)"
        endpoint = "127.0.0.1:\(node.city.transit.port)"
        country = "DE"
        roles = ["front", "exit"]
        carriers = [\(endpoints.joined(separator: ", "))]

        [log]
        level = "info"
        """
        let path = (dir as NSString).appendingPathComponent("client.toml")
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let client = try ChildProcess(name: name, executable: try Paths.montana(), arguments: ["client", "--config", path], logDirectory: dir)
        cleanups.append { client.stop(grace: 5) }
        return (client, socks, admin)
    }

    /// `/status` → `carriers.<profile>` of a node.
    func carrierStatus(_ node: LoneExitNode, _ profile: String) throws -> [String: Any] {
        let carriers = try status(node.city.admin.port)["carriers"] as? [String: Any]
        return carriers?[profile] as? [String: Any] ?? [:]
    }

    /// The client's `/status` reachability entries (one per front).
    func frontObservations(_ admin: Int) throws -> [[String: Any]] {
        ((try status(admin)["reachability"] as? [String: Any])?["fronts"] as? [[String: Any]]) ?? []
    }

    static let nginx = "/usr/sbin/nginx"
    static let openssl = "/usr/bin/openssl"

    /// A test CA and a leaf for `name` signed by it (EC P-256, two days), made with openssl.
    func certificates(in dir: String, name: String = "localhost") throws -> (ca: String, cert: String, key: String) {
        guard FileManager.default.isExecutableFile(atPath: Self.openssl) else { throw XCTSkip("openssl is not installed") }
        func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
        try "subjectAltName=DNS:\(name)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: path("leaf.ext"), atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("ca.key"),
             "-out", path("ca.crt"), "-days", "2", "-subj", "/CN=Montana Test CA"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("leaf.key"),
             "-out", path("leaf.csr"), "-subj", "/CN=\(name)"],
            ["x509", "-req", "-in", path("leaf.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
             "-out", path("leaf.crt"), "-days", "2", "-extfile", path("leaf.ext")],
        ]
        for (i, args) in steps.enumerated() {
            let p = try ChildProcess(name: "openssl-\(i)", executable: Self.openssl, arguments: args, logDirectory: dir)
            guard p.waitForExit(timeout: 30) == 0 else { p.stop(); throw E2EError("openssl \(args.joined(separator: " ")): \(p.outputTail())") }
        }
        return (path("ca.crt"), path("leaf.crt"), path("leaf.key"))
    }

    func requireNginx() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.nginx) else {
            throw XCTSkip("!!! nginx is not installed (apt-get install nginx-light): this carrier test cannot run")
        }
    }

    /// nginx with `conf` (written to `prefix`/nginx.conf) until it listens on `port`; stopped by PID at tear-down.
    func startNginx(conf: String, prefix: String, port: Int, dir: String) throws -> ChildProcess {
        try requireNginx()
        try conf.write(toFile: prefix + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = try ChildProcess(name: "nginx", executable: Self.nginx, arguments: ["-p", prefix, "-c", prefix + "/nginx.conf", "-e", prefix + "/error.log"],
                                     logDirectory: dir)
        cleanups.append { nginx.stop(grace: 3) }
        guard Net.waitForListener(port, timeout: 15, alive: { nginx.isRunning }) else {
            throw E2EError("nginx did not listen on \(port): \(nginx.outputTail()) \((try? String(contentsOfFile: prefix + "/error.log", encoding: .utf8)) ?? "")")
        }
        return nginx
    }
}
