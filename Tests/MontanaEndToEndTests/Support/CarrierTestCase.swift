import Foundation
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

    /// The client's `/status` circuits once its once-a-second snapshot shows one (at most 10 s).
    func circuitsWhenShown(_ admin: Int) throws -> [[String: Any]] {
        var circuits: [[String: Any]] = []
        _ = try poll(timeout: 10, interval: 0.2) {
            circuits = try status(admin)["circuits"] as? [[String: Any]] ?? []
            return !circuits.isEmpty
        }
        return circuits
    }
}
