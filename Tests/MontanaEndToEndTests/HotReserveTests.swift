import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MontanaNode
import NIOConcurrencyHelpers
import XCTest

/// Issue 8 items 2, 3 and 7: the client holds a warm reserve front (another operator, up) next
/// to the active one; when the active front dies, the next connection goes through the reserve
/// at once, to the same exit, and `/status` tells what happened.
final class HotReserveTests: XCTestCase {
    private var demo: DemoHarness?

    override func tearDown() {
        demo?.stop()
        demo = nil
        super.tearDown()
    }

    private func clientStatus(_ demo: DemoHarness) throws -> [String: Any] {
        guard let admin = demo.status.client.admin else { throw E2EError("the demo status names no client admin port") }
        let result = try Curl.get("http://\(admin.host):\(admin.port)/status")
        guard let doc = try JSONSerialization.jsonObject(with: Data(result.stdoutText.utf8)) as? [String: Any] else {
            throw E2EError("client /status is not a JSON object: \(result)")
        }
        return doc
    }

    private func active(_ doc: [String: Any]) -> [String: Any]? {
        ((doc["steering"] as? [String: Any])?["active"] as? [[String: Any]])?.first { $0["country"] as? String == "DE" }
    }

    /// The DE session's active front and its warm reserve, once the reserve's control session is
    /// up (the status port refreshes every second), and the active front's short node id.
    private func activeAndReserve(_ demo: DemoHarness) throws -> (front: DemoStatusFile.City, reserve: DemoStatusFile.City, frontNode: String) {
        var before: [String: Any]?
        XCTAssertTrue(poll(timeout: 10) {
            before = (try? self.clientStatus(demo)).flatMap(self.active)
            return before?["reserve_state"] as? String == "up"
        }, "a reserve front is chosen and its control session is up: \(String(describing: before))")
        let frontNode = try XCTUnwrap(before?["front_node"] as? String), reserveNode = try XCTUnwrap(before?["reserve_node"] as? String)
        XCTAssertNotEqual(frontNode, reserveNode, "the reserve is another front")
        let front = try XCTUnwrap(demo.status.cities.first { $0.nodeID.hasPrefix(frontNode) }, "the active front is a city")
        let reserve = try XCTUnwrap(demo.status.cities.first { $0.nodeID.hasPrefix(reserveNode) }, "the reserve is a city")
        return (front, reserve, frontNode)
    }

    func test_whenTheActiveFrontDiesTheNextConnectionUsesTheReserveToTheSameExit() throws {
        let demo = try DemoHarness.start(DemoHarness.Options(extraArguments: ["--cities", "4"]))
        self.demo = demo
        let berlin = try demo.status.exit(country: "DE")
        let first = try demo.curlSOCKS("\(demo.siteURL)/whoami", user: "country-de", extra: ["--fail"])
        XCTAssertTrue(first.succeeded, "DE works: \(first)\n\(demo.diagnostics())")
        XCTAssertEqual(first.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), berlin.transit.host, "berlin's egress address")

        let (front, reserve, frontNode) = try activeAndReserve(demo)
        XCTAssertNotEqual(front.nodeID, berlin.nodeID, "berlin is not its own front by default")
        XCTAssertNotEqual(reserve.nodeID, berlin.nodeID)
        XCTAssertNotEqual(front.operatorLabel, reserve.operatorLabel, "the reserve is of another operator")

        XCTAssertTrue(ProcessKiller.commandLine(front.pid).contains("montana"), "pid \(front.pid) is \(front.name)'s node")
        kill(front.pid, SIGKILL)
        XCTAssertTrue(poll(timeout: 5) { !ProcessKiller.isAlive(front.pid) }, "\(front.name) died")

        let after = try demo.curlSOCKS("\(demo.siteURL)/whoami", user: "country-de", extra: ["--fail"], timeout: 20)
        XCTAssertTrue(after.succeeded, "DE still works after its front died: \(after)\n\(demo.diagnostics())")
        XCTAssertEqual(after.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), berlin.transit.host, "through the same exit")
        XCTAssertLessThan(after.elapsed, 5, "at once, through the warm reserve: \(after)")

        var doc: [String: Any] = [:]
        XCTAssertTrue(poll(timeout: 5) {
            doc = (try? self.clientStatus(demo)) ?? [:]
            return (self.active(doc)?["front_node"] as? String).map { reserve.nodeID.hasPrefix($0) } ?? false
        }, "the session now runs through the former reserve \(reserve.name): \(doc["steering"] ?? "none")")
        let events = (doc["steering"] as? [String: Any])?["events"] as? [[String: Any]] ?? []
        let lost = events.first { $0["kind"] as? String == "front_lost" }
        XCTAssertNotNil(lost, "the loss is recorded: \(events)")
        XCTAssertTrue((lost?["from_front"] as? String).map { front.nodeID.hasPrefix(String($0.suffix(6))) } ?? false,
                      "naming the dead front: \(String(describing: lost))")
        let fronts = ((doc["reachability"] as? [String: Any])?["fronts"] as? [[String: Any]]) ?? []
        let dead = fronts.first { ($0["node"] as? String).map { front.nodeID.hasPrefix($0) } ?? false }
        XCTAssertEqual(dead?["state"] as? String, "unreachable", "the dead front is ranked unreachable: \(fronts)")
        XCTAssertNotEqual(self.active(doc)?["reserve_node"] as? String, frontNode, "the dead front is not the new reserve")
    }

    /// Issue 8 item 4: a download through the active front keeps going when that front's
    /// process is killed — the session resumes through the reserve to the same exit, and curl,
    /// on its one connection, gets every byte once and in order.
    func test_aDownloadContinuesWhenItsFrontIsKilled() throws {
        let demo = try DemoHarness.start(DemoHarness.Options(extraArguments: ["--cities", "4"]))
        self.demo = demo
        let warm = try demo.curlSOCKS("\(demo.siteURL)/whoami", user: "country-de", extra: ["--fail"])
        XCTAssertTrue(warm.succeeded, "DE works: \(warm)\n\(demo.diagnostics())")
        let (front, reserve, _) = try activeAndReserve(demo)

        let size = 24 << 20
        let download = NIOLockedValueBox<CurlResult?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let url = "\(demo.siteURL)/bytes/\(size)"
        DispatchQueue.global().async {
            let r = try? demo.curlSOCKS(url, user: "country-de", extra: ["--fail", "--limit-rate", "4M"], timeout: 60)
            download.withLockedValue { $0 = r }
            finished.signal()
        }
        Thread.sleep(forTimeInterval: 2)
        XCTAssertTrue(ProcessKiller.commandLine(front.pid).contains("montana"), "pid \(front.pid) is \(front.name)'s node")
        kill(front.pid, SIGKILL)
        XCTAssertEqual(finished.wait(timeout: .now() + 70), .success, "the download ends")
        let result = try XCTUnwrap(download.withLockedValue { $0 }, "curl ran")
        XCTAssertTrue(result.succeeded, "the download completed across the front's death: \(result)\n\(demo.diagnostics())")
        XCTAssertEqual(result.stdout.count, size, "every byte arrived")
        XCTAssertTrue(result.stdout.elementsEqual(demoSitePattern(count: size)), "each byte once, in order")

        var doc: [String: Any] = [:]
        var resumed: [String: Any]?
        XCTAssertTrue(poll(timeout: 5) {
            doc = (try? self.clientStatus(demo)) ?? [:]
            let events = (doc["steering"] as? [String: Any])?["events"] as? [[String: Any]] ?? []
            resumed = events.last { $0["kind"] as? String == "resumed" }
            return resumed != nil
        }, "a 'resumed' event: \(doc["steering"] ?? "none")")
        let stall = try XCTUnwrap(resumed?["stall_ms"] as? Int, "with stall_ms: \(String(describing: resumed))")
        XCTAssertLessThan(stall, 5000, "the stall is short")
        XCTAssertTrue((self.active(doc)?["front_node"] as? String).map { reserve.nodeID.hasPrefix($0) } ?? false,
                      "the session now runs through the former reserve \(reserve.name): \(String(describing: self.active(doc)))")
    }
}
