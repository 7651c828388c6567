import Foundation
import MontanaCrypto
import MontanaWire
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// T2 (PROTOCOL.md 2.3) with real TLS, a real nginx as the CDN stand-in and real curl: a node
/// with T0 and T2 (plain HTTP behind nginx) serves a client whose ladder is only T2 through
/// nginx's TLS port; nginx's other paths and the node's own listener show ordinary pages, never
/// a carrier; and a node terminating TLS itself serves a T2 client directly. Every process is
/// stopped by PID, also on failure.
final class WebSocketCarrierTests: CarrierTestCase {
    /// nginx from scripts/nginx/t2-cdn.conf.template on 127.0.0.1:`port`, proxying `path` to the
    /// node's WebSocket listener; an index.html for the other paths. Returns the prefix.
    private func startNginx(port: Int, path: String, node: Int, cert: String, key: String, dir: String) throws -> (ChildProcess, String) {
        try requireNginx()
        let prefix = (dir as NSString).appendingPathComponent("nginx")
        try FileManager.default.createDirectory(atPath: prefix + "/html", withIntermediateDirectories: true)
        try "<!DOCTYPE html>\n<html><body><h1>A plain site</h1></body></html>\n".write(toFile: prefix + "/html/index.html", atomically: true, encoding: .utf8)
        let template = try String(contentsOf: Paths.repositoryRoot.appendingPathComponent("scripts/nginx/t2-cdn.conf.template"), encoding: .utf8)
        let conf = template.replacingOccurrences(of: "@PREFIX@", with: prefix)
            .replacingOccurrences(of: "@LISTEN@", with: "127.0.0.1:\(port)")
            .replacingOccurrences(of: "@CERT@", with: cert).replacingOccurrences(of: "@KEY@", with: key)
            .replacingOccurrences(of: "@WS_PATH@", with: path).replacingOccurrences(of: "@NODE@", with: "127.0.0.1:\(node)")
        return (try startNginx(conf: conf, prefix: prefix, port: port, dir: dir), prefix)
    }

    private func startClient(_ name: String, node: LoneExitNode, t2: (port: Int, params: String), ca: String?)
        throws -> (client: ChildProcess, socks: Int, admin: Int) {
        let started = try startCarrierClient(name, node: node, carriers: ["t2"],
                                             endpoints: ["{ profile = \"t2\", endpoint = \"127.0.0.1:\(t2.port)\", params = \"\(t2.params)\" }"],
                                             extra: ca.map { "t2_ca_file = \"\($0)\"" } ?? "")
        XCTAssertTrue(Net.waitForListener(started.socks, timeout: 30, alive: { started.client.isRunning }), started.client.outputTail())
        return started
    }

    private static let secretPath = "/ws-" + "Zk3q9XvL2mN8pR4tY7wB"

    func test_aT2OnlyClientDownloadsThroughNginxAndOtherRequestsSeeOrdinaryPages() throws {
        let work = try Paths.makeTemporaryDirectory("montana-e2e-t2-cdn-")
        cleanups.append { Paths.removeTemporaryDirectory(work) }
        let (ca, cert, key) = try certificates(in: work)
        let wsPort = try Net.freePort(), cdnPort = try Net.freePort()
        let node = try LoneExitNode.start(name: "t2-node", extraConfig: """
        [carriers.ws]
        listen = "127.0.0.1:\(wsPort)"
        path = "\(Self.secretPath)"
        public_host = "localhost"
        public_port = \(cdnPort)
        trusted_proxies = ["127.0.0.1"]
        """)
        cleanups.append { node.stop() }
        XCTAssertTrue(Net.waitForListener(wsPort, timeout: 15, alive: { node.process.isRunning }))
        let t2 = try carrierStatus(node, "t2")
        XCTAssertEqual(t2["endpoint"] as? String, "localhost:\(cdnPort)", "the record publishes the CDN's host and port: \(t2)")
        XCTAssertEqual(t2["tls"] as? String, "proxy", "\(t2)")
        let (_, prefix) = try startNginx(port: cdnPort, path: Self.secretPath, node: wsPort, cert: cert, key: key, dir: work)

        // Other requests: nginx's own page, 404s, and the node's listener never a carrier.
        let home = try Curl.run(["-k", "-i", "https://localhost:\(cdnPort)/", "--resolve", "localhost:\(cdnPort):127.0.0.1"])
        XCTAssertTrue(home.succeeded && home.stdoutText.contains("200") && home.stdoutText.contains("A plain site"), "\(home)")
        let wrong = try Curl.run(["-k", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(cdnPort)/ws-wrong-path-0123456789abcdef"])
        XCTAssertEqual(wrong.stdoutText, "404", "\(wrong)")
        let plain = try Curl.run(["-i", "http://127.0.0.1:\(wsPort)\(Self.secretPath)"])
        XCTAssertTrue(plain.succeeded && plain.stdoutText.hasPrefix("HTTP/1.1 404"), "the right path without an upgrade is a 404: \(plain)")
        let root = try Curl.run(["-i", "http://127.0.0.1:\(wsPort)/"])
        XCTAssertTrue(root.stdoutText.hasPrefix("HTTP/1.1 200") && root.stdoutText.contains("It works"), "\(root)")
        XCTAssertFalse(root.stdoutText.lowercased().contains("server:"), "no Server header: \(root)")
        XCTAssertFalse(root.stdoutText.lowercased().contains("montana") || root.stdoutText.lowercased().contains("nio"), "\(root)")
        XCTAssertEqual(try carrierStatus(node, "t2")["connections"] as? Int, 0, "none of that became a carrier")

        let t0Before = try carrierStatus(node, "t0")["connections"] as? Int ?? -1
        let params = "host=localhost&path=\(Self.secretPath)&sni=localhost"
        let (client, socks, admin) = try startClient("t2-client", node: node, t2: (cdnPort, params), ca: ca)
        try downloadBlob(socks: socks, admin: admin, carrier: "t2", label: "T2 through nginx") { "\(client.outputTail())\n\(node.diagnostics())" }
        XCTAssertGreaterThanOrEqual(try carrierStatus(node, "t2")["connections"] as? Int ?? 0, 1)
        XCTAssertEqual(try carrierStatus(node, "t0")["connections"] as? Int, t0Before, "the client never used T0")
        // nginx logs a WebSocket request when it ends: stop the client, then read the log.
        client.stop(grace: 5)
        var access = ""
        XCTAssertTrue(poll(timeout: 10, interval: 0.2) {
            access = (try? String(contentsOfFile: prefix + "/access.log", encoding: .utf8)) ?? ""
            return access.contains("GET \(Self.secretPath) HTTP/1.1\" 101")
        }, "nginx logged the upgrade on the secret path: \(access)")
    }

    func test_aNodeWithItsOwnCertificateServesT2Directly() throws {
        let work = try Paths.makeTemporaryDirectory("montana-e2e-t2-direct-")
        cleanups.append { Paths.removeTemporaryDirectory(work) }
        let (ca, cert, key) = try certificates(in: work)
        let wsPort = try Net.freePort()
        let node = try LoneExitNode.start(name: "t2-direct", extraConfig: """
        [carriers.ws]
        listen = "127.0.0.1:\(wsPort)"
        path = "\(Self.secretPath)"
        tls_cert = "\(cert)"
        tls_key = "\(key)"
        """)
        cleanups.append { node.stop() }
        XCTAssertTrue(Net.waitForListener(wsPort, timeout: 15, alive: { node.process.isRunning }))
        XCTAssertEqual(try carrierStatus(node, "t2")["tls"] as? String, "node")
        let page = try Curl.run(["--cacert", ca, "https://localhost:\(wsPort)/", "--resolve", "localhost:\(wsPort):127.0.0.1"])
        XCTAssertTrue(page.succeeded && page.stdoutText.contains("It works"), "the node's own TLS, verified: \(page)")

        let (server, digest, dir) = try fileServer(prefix: "montana-e2e-t2-site-")
        let (client, socks, admin) = try startClient("t2-direct-client", node: node, t2: (wsPort, "host=localhost&path=\(Self.secretPath)&sni=localhost"), ca: ca)
        let out = (dir as NSString).appendingPathComponent("got.bin")
        let result = try download(socks: socks, url: "\(server.baseURL)/blob.bin", to: out)
        XCTAssertTrue(result.succeeded, "\(result)\n\(client.outputTail())\n\(node.diagnostics())")
        XCTAssertEqual(TestFiles.digest(out).sha256, digest)
        XCTAssertEqual(try circuitsWhenShown(admin).first?["carrier"] as? String, "t2")

        // Verification is on: a client trusting only the system roots refuses the test CA's certificate.
        let (strict, strictSocks, _) = try startClient("t2-strict-client", node: node, t2: (wsPort, "host=localhost&path=\(Self.secretPath)&sni=localhost"), ca: nil)
        let refused = try Curl.run(Curl.socks(strictSocks) + ["--fail", "-o", "/dev/null", "\(server.baseURL)/blob.bin"], timeout: 20)
        XCTAssertFalse(refused.succeeded, "an unverifiable certificate is never accepted: \(refused)\n\(strict.outputTail())")
    }
}
