import Foundation
import Metrics
import MontanaExit
import MontanaWire
import XCTest
@testable import MontanaNode

final class AdminServerTests: XCTestCase {
    private func withServer(metrics: MontanaMetrics = MontanaMetrics(),
                            status: @escaping AdminServer.StatusProvider = { ["ok": true] },
                            _ body: (Int) throws -> Void) async throws {
        let server = AdminServer(address: HostPort(host: "127.0.0.1", port: 0), metrics: metrics, status: status)
        let port = try await server.start()
        XCTAssertGreaterThan(port, 0)
        do {
            try body(port)
        } catch {
            try await server.stop()
            throw error
        }
        try await server.stop()
    }

    func test_metricsEndpointServesPrometheusTextWithIncrementedCounter() async throws {
        let metrics = MontanaMetrics()
        metrics.sessionsTotal.increment(by: 3)
        metrics.circuitsActive(.relayed).increment()
        metrics.bytesEgressTotal(.down).increment(by: 1500)
        metrics.prefaceRejections(reason: "replay").increment()
        try await withServer(metrics: metrics) { port in
            let response = try RawHTTP.request(port: port, path: "/metrics")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
            XCTAssertTrue(response.body.contains("# TYPE montana_sessions_total counter\nmontana_sessions_total 3\n"), response.body)
            XCTAssertTrue(response.body.contains("montana_circuits_active{kind=\"relayed\"} 1"), response.body)
            XCTAssertTrue(response.body.contains("montana_circuits_active{kind=\"local\"} 0"), response.body)
            XCTAssertTrue(response.body.contains("montana_bytes_egress_total{direction=\"down\"} 1500"), response.body)
            XCTAssertTrue(response.body.contains("montana_preface_rejections_total{reason=\"replay\"} 1"), response.body)
            XCTAssertTrue(response.body.contains("montana_policy_refusals_total{reason=\"builtin_range\"} 0"), response.body)

            metrics.sessionsTotal.increment()
            let again = try RawHTTP.request(port: port, path: "/metrics")
            XCTAssertTrue(again.body.contains("montana_sessions_total 4\n"), again.body)
        }
    }

    func test_statusEndpointServesTheCallersJSON() async throws {
        let status: AdminServer.StatusProvider = { ["node_id": "abc", "roles": ["front", "exit"], "circuits": 7] }
        try await withServer(status: status) { port in
            let response = try RawHTTP.request(port: port, path: "/status")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers["content-type"], "application/json")
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
            XCTAssertEqual(object["node_id"] as? String, "abc")
            XCTAssertEqual(object["roles"] as? [String], ["front", "exit"])
            XCTAssertEqual(object["circuits"] as? Int, 7)
        }
    }

    func test_unrepresentableStatusIsAServerError() async throws {
        try await withServer(status: { ["when": Date()] }) { port in
            XCTAssertEqual(try RawHTTP.request(port: port, path: "/status").status, 500)
        }
    }

    func test_healthzUnknownPathsAndMethods() async throws {
        try await withServer { port in
            let health = try RawHTTP.request(port: port, path: "/healthz")
            XCTAssertEqual(health.status, 200)
            XCTAssertEqual(health.body, "ok\n")
            XCTAssertEqual(try RawHTTP.request(port: port, path: "/metrics?name=x").status, 200)
            XCTAssertEqual(try RawHTTP.request(port: port, path: "/").status, 404)
            XCTAssertEqual(try RawHTTP.request(port: port, path: "/admin/../metrics").status, 404)
            XCTAssertEqual(try RawHTTP.request("POST", port: port, path: "/metrics").status, 405)
            let head = try RawHTTP.request("HEAD", port: port, path: "/healthz")
            XCTAssertEqual(head.status, 200)
            XCTAssertEqual(head.body, "")
        }
    }

    func test_stopReleasesThePort() async throws {
        let server = AdminServer(address: HostPort(host: "127.0.0.1", port: 0), metrics: MontanaMetrics(), status: { [:] })
        let port = try await server.start()
        try await server.stop()
        let port2 = await server.port
        XCTAssertNil(port2)
        XCTAssertThrowsError(try RawHTTP.request(port: port, path: "/healthz"))
    }

    func test_sharedMetricsCollectThoseMadeThroughTheSwiftMetricsAPI() {
        let shared = MontanaMetrics.shared
        // A lower layer that only imports Metrics still lands in the same exposition.
        Counter(label: "montana_test_lower_layer_total", dimensions: [("reason", "x")]).increment(by: 2)
        shared.streamsTotal.increment()
        let text = String(decoding: shared.exposition(), as: UTF8.self)
        XCTAssertTrue(text.contains("montana_test_lower_layer_total{reason=\"x\"} 2"), text)
        XCTAssertTrue(text.contains("montana_streams_total"), text)
    }

    func test_freeFormReasonsCannotCarryUserData() {
        let metrics = MontanaMetrics()
        metrics.handshakeFailures(reason: "198.51.100.7:443").increment()
        metrics.handshakeFailures(reason: "bad_proof").increment()
        metrics.egressOpenFailures(status: .unreachable).increment()
        metrics.policyRefusals(reason: .defaultDeny).increment()
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        XCTAssertFalse(text.contains("198.51.100.7"), text)
        XCTAssertTrue(text.contains("montana_handshake_failures_total{reason=\"other\"} 1"), text)
        XCTAssertTrue(text.contains("montana_handshake_failures_total{reason=\"bad_proof\"} 1"), text)
        XCTAssertTrue(text.contains("montana_egress_open_failures_total{status=\"unreachable\"} 1"), text)
        XCTAssertTrue(text.contains("montana_policy_refusals_total{reason=\"default_deny\"} 1"), text)
    }
}
