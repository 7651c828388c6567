import Foundation
import XCTest

/// `montana node` refuses a bad config, naming the file, the key and the problem.
final class ConfigErrorTests: XCTestCase {
    private var node: ChildProcess?
    private var work: String?

    override func tearDown() {
        node?.stop(grace: 2)
        node = nil
        Paths.removeTemporaryDirectory(work)
        super.tearDown()
    }

    func test_nodeRefusesABadConfigNamingFileAndKey() throws {
        let montana = try Paths.montana()
        let work = try Paths.makeTemporaryDirectory("montana-e2e-badconfig")
        self.work = work
        let keygen = try ChildProcess(name: "keygen", executable: montana, arguments: ["keygen", "node", "--out", work],
                                      logDirectory: work)
        XCTAssertEqual(keygen.waitForExit(timeout: 30), 0, "montana keygen node failed:\n\(keygen.outputTail())")

        let configPath = (work as NSString).appendingPathComponent("node.toml")
        try """
        [node]
        identity_key = "identity.key"
        kem_key = "kem.key"
        roles = ["front"]

        [listen]
        transit = "127.0.0.1:99999"

        """.write(toFile: configPath, atomically: true, encoding: .utf8)

        let node = try ChildProcess(name: "node", executable: montana, arguments: ["node", "--config", configPath],
                                    logDirectory: work)
        self.node = node
        guard let status = node.waitForExit(timeout: 10) else {
            return XCTFail("montana node kept running with transit port 99999 (should refuse within 10 s):\n\(node.outputTail())")
        }
        XCTAssertNotEqual(status, 0, "a bad config must give a non-zero exit:\n\(node.outputTail())")
        let stderr = node.stderr
        XCTAssertTrue(stderr.contains("node.toml"), "stderr names the file: \(stderr)")
        XCTAssertTrue(stderr.contains("listen.transit"), "stderr names the key: \(stderr)")
    }
}
