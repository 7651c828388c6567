import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// `optimistic_connect` against a real demo: when the local proxy answers an app's SOCKS5
/// CONNECT before the exit did. The observable difference is what an app gets for a destination
/// the exit cannot open: a clear SOCKS5 refusal code, or a success followed by a closed connection.
final class OptimisticConnectTests: XCTestCase {
    private static let shared = SharedDemo()
    private var clients: [ChildProcess] = []
    private var work: String?
    private var listeners: [Int32] = []

    override class func setUp() { super.setUp(); shared.start() }
    override class func tearDown() { shared.stop(); super.tearDown() }

    override func tearDown() {
        for client in clients { client.stop(grace: 2) }
        clients = []
        for fd in listeners { close(fd) }
        listeners = []
        Paths.removeTemporaryDirectory(work)
        work = nil
        super.tearDown()
    }

    /// A client of the demo's alliance (every city as a static member), default exit DE.
    private func startClient(mode: String?) throws -> Int {
        let demo = try Self.shared.running()
        let dir = try work ?? Paths.makeTemporaryDirectory("montana-e2e-optimistic")
        work = dir
        let socks = try Net.freePort()
        let members = demo.status.cities.map { city in
            """

            [[members]]
            node_id = "\(city.nodeID)"
            kem_pk = "\(city.kemPK)"
            endpoint = "\(city.transit.host):\(city.transit.port)"
            country = "\(city.country)"
            roles = [\(city.roles.map { "\"\($0)\"" }.joined(separator: ", "))]

            """
        }.joined()
        let path = (dir as NSString).appendingPathComponent("client-\(mode ?? "default").toml")
        try """
        [client]
        account_key = "\(demo.status.client.accountKey)"
        alliance = "\(demo.status.alliance?.uuid ?? "")"
        socks = "127.0.0.1:\(socks)"
        country = "DE"
        \(mode.map { "optimistic_connect = \"\($0)\"" } ?? "")
        \(members)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let client = try ChildProcess(name: "client-\(mode ?? "default")", executable: try Paths.montana(),
                                      arguments: ["client", "--config", path], logDirectory: dir)
        clients.append(client)
        guard Net.waitForListener(socks, timeout: ClientHardeningTests.clientStartTimeout, alive: { client.isRunning }) else {
            throw E2EError("montana client did not listen on \(socks):\n\(client.outputTail())")
        }
        return socks
    }

    /// A SOCKS5 CONNECT to 127.0.0.1:`port` (no auth): the reply code and whether the proxy then
    /// closed the connection (within a few seconds, with nothing else received).
    private func connect(socks: Int, to port: Int) throws -> (code: UInt8?, closed: Bool) {
        let request: [UInt8] = [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xff)]
        let answer = try Net.exchange(port: socks, send: request, window: 15, stopAfter: 10, settle: 3)
        let bytes = answer.received
        guard bytes.count >= 4, bytes[0] == 5, bytes[1] == 0 else { return (nil, answer.closedByPeer) }
        return (bytes[3], answer.closedByPeer)
    }

    /// Listens on 127.0.0.1:`port` (the kernel completes TCP handshakes from the backlog).
    private func listen(on port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Net.loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            close(fd)
            throw E2EError("cannot listen on \(port): errno \(errno)")
        }
        listeners.append(fd)
        return fd
    }

    private func stopListening(_ fd: Int32) {
        close(fd)
        listeners.removeAll { $0 == fd }
    }

    /// Opens a destination once (so the exit has opened it), then closes it: what does the next
    /// CONNECT to it get?
    private func refusalAfterAnOpen(socks: Int) throws -> (first: (code: UInt8?, closed: Bool), open: (code: UInt8?, closed: Bool),
                                                           afterOpen: (code: UInt8?, closed: Bool), again: (code: UInt8?, closed: Bool)) {
        let port = try Net.freePort()
        let first = try connect(socks: socks, to: port)
        let fd = try listen(on: port)
        let open = try connect(socks: socks, to: port)
        stopListening(fd)
        let afterOpen = try connect(socks: socks, to: port)
        let again = try connect(socks: socks, to: port)
        return (first, open, afterOpen, again)
    }

    func test_knownAnswersAtOnceOnlyForDestinationsTheExitOpened() throws {
        let socks = try startClient(mode: nil)
        let r = try refusalAfterAnOpen(socks: socks)
        XCTAssertNotNil(r.first.code)
        XCTAssertNotEqual(r.first.code, 0, "a destination never opened gets the exit's refusal as a SOCKS5 code")
        XCTAssertEqual(r.open.code, 0, "a listening destination opens")
        XCTAssertEqual(r.afterOpen.code, 0, "a destination the exit just opened is answered before the exit answers")
        XCTAssertTrue(r.afterOpen.closed, "and the exit's refusal then closes the app's connection")
        XCTAssertNotEqual(r.again.code, 0, "after that refusal the destination gets the clear code again")
        XCTAssertTrue(r.again.closed)
    }

    func test_neverKeepsEveryRefusalAClearCode() throws {
        let socks = try startClient(mode: "never")
        let r = try refusalAfterAnOpen(socks: socks)
        XCTAssertEqual(r.open.code, 0)
        XCTAssertNotNil(r.afterOpen.code)
        XCTAssertNotEqual(r.afterOpen.code, 0, "never: the proxy waits for the exit, so the refusal is a code")
    }

    func test_alwaysAnswersEveryConnectAtOnce() throws {
        let socks = try startClient(mode: "always")
        let port = try Net.freePort()
        let r = try connect(socks: socks, to: port)
        XCTAssertEqual(r.code, 0, "always: even a destination never opened is answered at once")
        XCTAssertTrue(r.closed, "and closed when the exit refuses it")
    }
}
