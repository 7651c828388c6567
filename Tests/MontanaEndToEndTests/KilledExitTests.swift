import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// A demo whose berlin exit is killed mid-run.
final class KilledExitTests: XCTestCase {
    private var demo: DemoHarness?

    override func tearDown() {
        demo?.stop()
        demo = nil
        super.tearDown()
    }

    func test_killedExitGivesACleanSOCKSErrorNotAHang() throws {
        let demo = try DemoHarness.start()
        self.demo = demo
        let berlin = try demo.status.exit(country: "DE")
        let url = "\(demo.siteURL)/"

        // NL must work before the kill (its exit corroborated by two attesters, berlin among
        // them): on a loaded machine attestations can take longer than the demo's 60 s wait.
        XCTAssertTrue(poll(timeout: 90, interval: 1) {
            (try? demo.curlSOCKS(url, user: "country-nl", extra: ["--fail"], timeout: 10))?.succeeded ?? false
        }, "amsterdam works before the kill\n\(demo.diagnostics())")

        // A live session to berlin first, so the kill also breaks an established circuit.
        let before = try demo.curlSOCKS(url, user: "country-de", extra: ["--fail"])
        XCTAssertTrue(before.succeeded, "berlin works before the kill: \(before)\n\(demo.diagnostics())")

        XCTAssertTrue(ProcessKiller.commandLine(berlin.pid).contains("montana"), "pid \(berlin.pid) is berlin's montana node")
        kill(berlin.pid, SIGKILL)
        XCTAssertTrue(poll(timeout: 5) { !ProcessKiller.isAlive(berlin.pid) }, "berlin (pid \(berlin.pid)) died")

        let after = try demo.curlSOCKS(url, user: "country-de", timeout: 25)
        XCTAssertNotEqual(after.exitCode, Curl.timedOut, "a dead exit must not make curl time out: \(after)")
        XCTAssertTrue([Curl.proxyError, Curl.couldNotConnect].contains(after.exitCode),
                      "a dead exit gives a SOCKS error (97) or a refused connection (7): \(after)")
        XCTAssertLessThan(after.elapsed, 15, "and quickly: \(after)\n\(demo.diagnostics())")

        let other = try demo.curlSOCKS(url, user: "country-nl", extra: ["--fail"])
        XCTAssertTrue(other.succeeded, "amsterdam still works: \(other)\n\(demo.diagnostics())")
        XCTAssertTrue(other.stdoutText.contains("Hello through the Montana Alliance"), "\(other)")
    }
}
