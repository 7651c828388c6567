import Foundation
import MontanaDirectory

/// A whole alliance on loopback, set up as its operators would with the CLI: `montana alliance
/// init`, per member `montana node init` + `montana alliance endorse` + node.toml edits, one
/// bootstrap link per member (a ring), a GeoIP CSV mapping each member's /16 to a country, a
/// local web site (python's http.server), and clients on a subscription listing one bootstrap
/// front. Every process is stopped by PID in `stop()`.
final class Federation: @unchecked Sendable {
    let root: String
    let alliance: FederationAlliance
    let geoipPath: String
    let fileServer: FileServer
    /// Members started with the federation, in start order.
    let nodes: [FederationNode]
    /// The subscription of the federation's clients: one bootstrap link, `nodes[0]`'s.
    let subscriptionPath: String
    private let lock = NSLock()
    private var extraNodes: [FederationNode] = []
    private var clients: [FederationClient] = []

    /// The file every request fetches (a few bytes) and a larger one for quota tests.
    static let helloFile = "hello.txt"
    static let helloText = "hello from the test's web site\n"

    /// `specs` start now; `reserved` are members added later (their /16s enter the GeoIP CSV
    /// from the start, as a real GeoIP database would know them). Member i bootstraps from
    /// member i-1 (member 0 from the last): a ring, one link each.
    init(name: String, specs: [FederationNode.Spec], reserved: [FederationNode.Spec] = [], files: [String: Int] = [:]) throws {
        FederationNet.reapOrphans()
        root = try Paths.makeTemporaryDirectory(FederationRoot.marker)
        var started: [FederationNode] = []
        var server: FileServer?
        do {
            alliance = try FederationAlliance(root: root, name: name)
            geoipPath = (root as NSString).appendingPathComponent("geoip.csv")
            let rows = (specs + reserved).map { "\($0.slash16),\($0.geoCountry)" }
            try ("# the test federation's loopback GeoIP: one /16 per member\n" + rows.joined(separator: "\n") + "\n")
                .write(toFile: geoipPath, atomically: true, encoding: .utf8)
            let site = (root as NSString).appendingPathComponent("site")
            try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
            try Self.helloText.write(toFile: (site as NSString).appendingPathComponent(Self.helloFile), atomically: true, encoding: .utf8)
            for (file, size) in files { try TestFiles.writeRandom(file, size: size, in: site) }
            server = try FileServer(serving: site, logDirectory: root)
            for spec in specs { started.append(try FederationNode(spec: spec, root: root, alliance: alliance, geoipPath: geoipPath)) }
            for (i, node) in started.enumerated() {
                try node.setBootstrap([started[(i + started.count - 1) % started.count].link])
            }
            for node in started { try node.launch() }
            for node in started { try node.waitUntilListening() }
            subscriptionPath = (root as NSString).appendingPathComponent("subscription.json")
            try FederationCLI.check(["subscription", "create", "--alliance", alliance.documentPath, "--bootstrap", started[0].link,
                                     "--title", name, "--out", subscriptionPath], logDirectory: root)
        } catch {
            for node in started { node.stop() }
            server?.stop()
            Paths.removeTemporaryDirectory(root)
            throw error
        }
        fileServer = server!
        nodes = started
    }

    func url(_ file: String = Federation.helloFile, tag: String) -> String {
        "\(fileServer.baseURL)/\(file)?tag=\(tag)"
    }

    func node(_ name: String) throws -> FederationNode {
        guard let node = (nodes + extra).first(where: { $0.spec.name == name }) else { throw E2EError("no member \(name)") }
        return node
    }

    private var extra: [FederationNode] {
        lock.lock()
        defer { lock.unlock() }
        return extraNodes
    }

    /// Every member that runs now.
    var running: [FederationNode] { (nodes + extra).filter(\.isRunning) }

    /// Sets up one more member with the CLI (init, endorse, edits, link), bootstrapped from
    /// `bootstrap` links; the caller `start()`s it. It is stopped by `stopExtras()` (the test's
    /// tearDown) or `stop()`.
    func prepareNode(_ spec: FederationNode.Spec, bootstrap: [String]) throws -> FederationNode {
        let node = try FederationNode(spec: spec, root: root, alliance: alliance, geoipPath: geoipPath)
        try node.setBootstrap(bootstrap)
        lock.lock()
        extraNodes.append(node)
        lock.unlock()
        return node
    }

    /// A client (init + ports); `start` it on `subscription`. Stopped by `stopClients()`/`stop()`.
    func makeClient(_ name: String, clientKeys: [(String, String)] = []) throws -> FederationClient {
        let client = try FederationClient(name: name, root: root, clientKeys: clientKeys)
        lock.lock()
        clients.append(client)
        lock.unlock()
        return client
    }

    /// Withdraws (`montana node deregister`) and stops the members `prepareNode` made (a test's
    /// own), so that a test failing half-way leaves no live record behind for the next one.
    func stopExtras() {
        lock.lock()
        let extras = extraNodes
        extraNodes = []
        lock.unlock()
        for node in extras {
            if node.isRunning { _ = try? FederationCLI.run(["node", "deregister", "--config", node.configPath], logDirectory: root) }
            node.stop()
        }
    }

    func stopClients(except keep: [FederationClient] = []) {
        lock.lock()
        let all = clients
        lock.unlock()
        for c in all where !keep.contains(where: { $0 === c }) { c.stop() }
    }

    /// Stops every process by PID and removes the directory (unless MONTANA_E2E_KEEP is set).
    func stop() {
        stopClients()
        stopExtras()
        for node in nodes { node.stop() }
        fileServer.stop()
        Paths.removeTemporaryDirectory(root)
    }

    /// Waits until `client`'s directory satisfies `condition` (polling every 100 ms, bounded).
    /// Returns the seconds it took, or throws with the last document.
    @discardableResult
    func wait(for client: FederationClient, timeout: TimeInterval, _ what: String,
              _ condition: (DirectoryDocument) -> Bool) throws -> TimeInterval {
        try wait(timeout: timeout, what, fetch: { try client.directoryView() }, condition)
    }

    @discardableResult
    func wait(timeout: TimeInterval, _ what: String, fetch: () throws -> DirectoryDocument,
              _ condition: (DirectoryDocument) -> Bool) throws -> TimeInterval {
        let start = Date()
        var last: DirectoryDocument?
        var lastError: (any Error)?
        let held = poll(timeout: timeout, interval: 0.1) {
            do {
                let document = try fetch()
                last = document
                return condition(document)
            } catch {
                lastError = error
                return false
            }
        }
        guard held else {
            throw E2EError("\(what): not within \(Int(timeout)) s; last directory:\n\(last.map { "\($0)" } ?? "none: \(lastError.map { "\($0)" } ?? "")")\n\(diagnostics())")
        }
        return Date().timeIntervalSince(start)
    }

    /// Every member's and client's state and log tail, for failure messages.
    func diagnostics(_ count: Int = 1500) -> String {
        lock.lock()
        let clients = self.clients
        lock.unlock()
        return ((nodes + extra).map { $0.diagnostics(count) } + clients.map { $0.diagnostics(count) }).joined(separator: "\n")
    }
}

/// One federation shared by the tests of a class: built in `class func setUp()`, stopped in
/// `class func tearDown()`; a failed start is kept and rethrown by `running()` so that every
/// test of the class reports it.
final class SharedFederation: @unchecked Sendable {
    private let lock = NSLock()
    private var federation: Federation?
    private var client: FederationClient?
    private var setupError: (any Error)?

    /// `build` makes the federation and, optionally, a client every test of the class uses
    /// (and waits for whatever the tests need).
    func start(_ build: () throws -> (Federation, FederationClient?)) {
        let result = Result { try build() }
        lock.lock()
        defer { lock.unlock() }
        switch result {
        case .success(let (federation, client)):
            self.federation = federation
            self.client = client
        case .failure(let error):
            setupError = error
        }
    }

    func stop() {
        lock.lock()
        let federation = self.federation
        self.federation = nil
        client = nil
        lock.unlock()
        federation?.stop()
    }

    func running() throws -> Federation {
        lock.lock()
        defer { lock.unlock() }
        if let setupError { throw setupError }
        guard let federation else { throw E2EError("the shared federation is not running") }
        return federation
    }

    /// The federation and its shared client.
    func runningWithClient() throws -> (Federation, FederationClient) {
        let federation = try running()
        lock.lock()
        defer { lock.unlock() }
        guard let client else { throw E2EError("the shared federation has no client") }
        return (federation, client)
    }

    /// Ends what one test added (its members and clients), keeping the shared ones.
    func cleanUpAfterTest() {
        lock.lock()
        let federation = self.federation, client = self.client
        lock.unlock()
        federation?.stopExtras()
        federation?.stopClients(except: client.map { [$0] } ?? [])
    }
}
