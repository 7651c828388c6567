import Foundation
import MontanaCrypto
import MontanaWire
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// T3 (PROTOCOL.md 2.4) with the real `obfs4proxy` on both sides: a node with T0 and T3, a client
/// whose ladder is only T3 downloads through obfs4 (and never touches the T0 port), the node
/// restarts a killed obfs4proxy and the client works again, a missing binary is a clear start
/// error, and a client ladder T3 → T0 falls back when the T3 port is closed, recording it.
/// Every process is stopped by PID, also on failure.
final class Obfs4CarrierTests: CarrierTestCase {

    private func requireObfs4proxy() throws {
        let found = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/obfs4proxy") }
        guard found else { throw XCTSkip("obfs4proxy is not installed (apt-get install obfs4proxy; .ci/run installs it)") }
    }

    private func t3Status(_ node: LoneExitNode) throws -> [String: Any] { try carrierStatus(node, "t3") }

    private func t0Connections(_ node: LoneExitNode) throws -> Int { try carrierStatus(node, "t0")["connections"] as? Int ?? -1 }

    /// A client listing `node` with the given ladder and T3 carrier.
    private func startClient(_ name: String, node: LoneExitNode, carriers: [String], t3: (port: Int, params: String)?,
                             extra: String = "") throws -> (client: ChildProcess, socks: Int, admin: Int) {
        let endpoints = t3.map { ["{ profile = \"t3\", endpoint = \"127.0.0.1:\($0.port)\", params = \"\($0.params)\" }"] } ?? []
        return try startCarrierClient(name, node: node, carriers: carriers, endpoints: endpoints, extra: extra)
    }

    /// The obfs4proxy the node started: its child whose command is obfs4proxy.
    private func obfs4proxyChild(of parent: Int32) -> Int32? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in entries.compactMap(Int32.init) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let name = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            if name == "obfs4proxy", fields.count > 1, Int32(fields[1]) == parent { return pid }
        }
        return nil
    }

    func test_aT3OnlyClientDownloadsThroughObfs4AndSurvivesAKilledObfs4proxy() throws {
        try requireObfs4proxy()
        let t3Port = try Net.freePort()
        let node = try LoneExitNode.start(name: "t3-node", extraConfig: """
        [carriers.obfs4]
        listen = "127.0.0.1:\(t3Port)"
        """)
        cleanups.append { node.stop() }
        let t3 = try t3Status(node)
        XCTAssertEqual(t3["state"] as? String, "running", "\(t3)")
        let params = try XCTUnwrap(t3["params"] as? String, "the node shows the endpoint it publishes: \(t3)")
        XCTAssertTrue(params.hasPrefix("cert=") && params.contains("&iat-mode=0"), params)

        let (server, digest, dir) = try fileServer(prefix: "montana-e2e-t3-site-")
        // The harness probed the T0 port while waiting for the node: count from here.
        let t0Before = try t0Connections(node)
        let (client, socks, admin) = try startClient("t3-client", node: node, carriers: ["t3"], t3: (t3Port, params))
        XCTAssertTrue(Net.waitForListener(socks, timeout: 30, alive: { client.isRunning }), client.outputTail())
        let out = (dir as NSString).appendingPathComponent("got.bin")
        let result = try download(socks: socks, url: "\(server.baseURL)/blob.bin", to: out)
        XCTAssertTrue(result.succeeded, "\(result)\n\(client.outputTail())\n\(node.diagnostics())")
        XCTAssertEqual(TestFiles.digest(out).sha256, digest, "2 MiB through obfs4, byte for byte")

        let circuits = try circuitsWhenShown(admin)
        XCTAssertEqual(circuits.first?["carrier"] as? String, "t3", "\(circuits)")
        XCTAssertEqual(try t0Connections(node), t0Before, "the client never connected to the front's T0 port")
        XCTAssertGreaterThanOrEqual(try t3Status(node)["connections"] as? Int ?? 0, 1)

        // obfs4proxy dies: the node restarts it (same port, same cert from its state) and counts it.
        let pt = try XCTUnwrap(obfs4proxyChild(of: node.process.pid), "the node's obfs4proxy child")
        kill(pt, SIGKILL)
        XCTAssertTrue(poll(timeout: 20, interval: 0.2) {
            let s = (try? self.t3Status(node)) ?? [:]
            return (s["restarts"] as? Int ?? 0) >= 1 && s["state"] as? String == "running"
        }, "restarted: \((try? t3Status(node)) ?? [:])\n\(node.diagnostics())")
        XCTAssertNotEqual(obfs4proxyChild(of: node.process.pid), pt)
        XCTAssertEqual(try t3Status(node)["params"] as? String, params, "the same cert after the restart")
        var again: CurlResult?
        XCTAssertTrue(try poll(timeout: 40, interval: 1) {
            again = try download(socks: socks, url: "\(server.baseURL)/blob.bin", to: out)
            return again?.succeeded == true
        }, "the client works again: \(again.map { "\($0)" } ?? "")\n\(client.outputTail())")
        XCTAssertEqual(TestFiles.digest(out).sha256, digest)
        XCTAssertEqual(try t0Connections(node), t0Before, "still no T0 connection")
        let metrics = try Curl.get("http://127.0.0.1:\(node.city.admin.port)/metrics").stdoutText
        XCTAssertTrue(metrics.contains("montana_pt_restarts_total"), "restarts are a metric")
    }

    func test_theLadderFallsBackFromAClosedT3PortToT0AndRecordsIt() throws {
        try requireObfs4proxy()
        let node = try LoneExitNode.start(name: "t3-fallback")
        cleanups.append { node.stop() }
        let (server, digest, dir) = try fileServer(prefix: "montana-e2e-t3-site-")
        // A T3 endpoint nobody listens on, with a well-formed cert: obfs4proxy's CONNECT is refused.
        let closed = try Net.freePort()
        let cert = String(repeating: "A", count: 70)
        let (client, socks, admin) = try startClient("t3-fallback-client", node: node, carriers: ["t3", "t0"],
                                                     t3: (closed, "cert=\(cert)&iat-mode=0"))
        XCTAssertTrue(Net.waitForListener(socks, timeout: 30, alive: { client.isRunning }), client.outputTail())
        let out = (dir as NSString).appendingPathComponent("got.bin")
        let result = try download(socks: socks, url: "\(server.baseURL)/blob.bin", to: out)
        XCTAssertTrue(result.succeeded, "\(result)\n\(client.outputTail())")
        XCTAssertEqual(TestFiles.digest(out).sha256, digest)
        let circuits = try circuitsWhenShown(admin)
        XCTAssertEqual(circuits.first?["carrier"] as? String, "t0", "\(circuits)")
        let fronts = try frontObservations(admin)
        let front = try XCTUnwrap(fronts.first, "no reachability entry")
        XCTAssertEqual(front["state"] as? String, "reachable", "T3 failing is an observation, not the front's verdict: \(front)")
        XCTAssertEqual(front["working_profile"] as? String, "t0", "\(front)")
        let errors = front["profile_errors"] as? [String: String] ?? [:]
        XCTAssertNotNil(errors["t3"], "the T3 failure is recorded: \(front)")
        XCTAssertGreaterThanOrEqual(front["failures"] as? Int ?? 0, 1)
    }

    func test_aMissingObfs4proxyIsAClearStartError() throws {
        let t3Port = try Net.freePort()
        XCTAssertThrowsError(try LoneExitNode.start(name: "t3-missing", extraConfig: """
        [carriers.obfs4]
        listen = "127.0.0.1:\(t3Port)"
        binary = "obfs4proxy-not-installed"
        """)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("[carriers.obfs4]") && text.contains("obfs4proxy-not-installed not found on PATH")
                          && text.contains("apt-get install obfs4proxy"), text)
        }
        // The client side: a ladder that names t3 without the program refuses to start, naming the key.
        let node = try LoneExitNode.start(name: "t3-missing-client-side")
        cleanups.append { node.stop() }
        let (client, _, _) = try startClient("t3-missing-client", node: node, carriers: ["t3"],
                                             t3: (t3Port, "cert=\(String(repeating: "A", count: 70))&iat-mode=0"),
                                             extra: "obfs4_binary = \"obfs4proxy-not-installed\"")
        XCTAssertNotNil(client.waitForExit(timeout: 20), "the client exits")
        XCTAssertTrue(client.stderr.contains("[client] carriers") && client.stderr.contains("apt-get install obfs4proxy"), client.outputTail())
    }
}
