import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The node's handshake limit (`[limits] handshakes_per_second`) and the listener's circuit cap
/// (`[limits] circuits_per_source`) against a real `montana node`: over either, a valid preface
/// gets the same silence as garbage — no answer and no close — while others are still answered.
/// (`PrefaceAdmissionHandlerTests` checks the same on embedded channels; this is the running node.)
final class NodeAdmissionLimitTests: XCTestCase {
    /// `handshakes_per_second` for the handshake test: the node's bucket holds 2 (one second's worth).
    private let handshakesPerSecond = 2
    /// Prefaces sent at once, each from a /24 of its own (so only the node-wide budget applies).
    private let handshakeBurst = 16
    /// Most answers the budget can give while the burst is processed: 2 at once plus 2/s for the
    /// ~3 s a loaded 2-core machine may take to decapsulate 16 prefaces.
    private let maxAnswered = 8
    /// `circuits_per_source` for the circuit-cap test.
    private let circuitsPerSource = 2
    /// Answers come within milliseconds; this is how long a probe waits for one.
    private let answerWindow: TimeInterval = 3
    /// An over-limit connection must stay open, silent, at least this long (the discard timer
    /// is 10-60 s, so a close within this window would be a close at accept).
    private let silenceWindow: TimeInterval = 3
    /// Send (and connect) timeout of a probe socket: a loopback connect is immediate; 2 s only
    /// bounds a node whose accept queue is full.
    private let connectTimeout: TimeInterval = 2

    private var node: LoneExitNode?
    private var fds: [Int32] = []

    override func tearDown() {
        for fd in fds { close(fd) }
        fds = []
        node?.stop()
        node = nil
        super.tearDown()
    }

    /// Starts a node with `limits` as its `[limits]` section; it is stopped in tearDown.
    private func startNode(name: String, limits: String) throws -> LoneExitNode {
        let node = try LoneExitNode.start(name: name, extraConfig: "[limits]\n\(limits)\n")
        self.node = node
        return node
    }

    /// A fresh preface naming `node` itself (a session to terminate there).
    private func preface(_ node: LoneExitNode) throws -> [UInt8] {
        guard let kem = Hex.decode(node.city.kemPK), let id = NodeID(hex: node.city.nodeID) else { throw E2EError("bad node keys") }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: id.multihash), ext: RelayExtension(ts: WallClock.now(), alliance: node.city.allianceUUID, purpose: .session))
        return try Preface.seal(.hop(hop), to: kem).bytes
    }

    /// Connects from `source` and sends `bytes`; the socket is closed in tearDown.
    private func send(_ bytes: [UInt8], from source: String, to port: Int) throws -> Int32 {
        guard let fd = Net.connect(from: source, port: port, timeout: connectTimeout) else { throw E2EError("cannot connect from \(source) to \(port)") }
        fds.append(fd)
        guard Net.sendAll(fd, bytes) else { throw E2EError("send from \(source) failed") }
        return fd
    }

    private func rejections(_ node: LoneExitNode, reason: String) throws -> Double {
        try PrometheusText.scrape(node.city).samples
            .filter { $0.name == "montana_preface_rejections_total" && $0.labels.contains("\"\(reason)\"") }
            .reduce(0) { $0 + $1.value }
    }

    func test_prefacesOverTheNodesHandshakeLimitGetSilenceNotAnAnswerOrAClose() throws {
        let node = try startNode(name: "handshake-limit", limits: "handshakes_per_second = \(handshakesPerSecond)")
        let port = node.city.transit.port
        let prefaces = try (0..<handshakeBurst).map { _ in try preface(node) }
        let sockets = try prefaces.enumerated().map { i, p in try send(p, from: "127.0.\(40 + i).1", to: port) }

        // Answers come within milliseconds of the node reading a preface; look at every
        // connection at once after the window.
        Thread.sleep(forTimeInterval: answerWindow)
        var answered = 0
        var silent: [Int32] = []
        for fd in sockets {
            let seen = Net.drain(fd)
            if seen.received.count == Preface.responseSize {
                answered += 1
            } else if seen.received.isEmpty && !seen.closedByPeer {
                silent.append(fd)
            } else {
                XCTFail("a preface got \(seen.received.count) bytes, closed: \(seen.closedByPeer) (expected 80 bytes or silence)")
            }
        }
        let context = "answered \(answered), silent \(silent.count) of \(handshakeBurst)\n\(node.diagnostics(1500))"
        XCTAssertGreaterThanOrEqual(answered, handshakesPerSecond, "the budget's burst is answered: \(context)")
        XCTAssertLessThanOrEqual(answered, maxAnswered, "beyond \(handshakesPerSecond)/s prefaces are not answered: \(context)")
        XCTAssertEqual(answered + silent.count, handshakeBurst, context)
        if let probe = silent.last {
            let watched = Net.receive(probe, window: silenceWindow, stopAfter: 1)
            XCTAssertEqual(watched.received.count, 0, "no late answer: \(context)")
            XCTAssertFalse(watched.closedByPeer, "an over-limit connection is not closed (closed after \(watched.elapsed) s): \(context)")
        }
        XCTAssertGreaterThan(try rejections(node, reason: "handshake_limit"), 0, "refusals are counted as handshake_limit")

        // The limit is a rate: a second later the budget has refilled.
        Thread.sleep(forTimeInterval: 1)
        let later = try send(try preface(node), from: "127.0.90.1", to: port)
        XCTAssertEqual(Net.receive(later, window: answerWindow, stopAfter: Preface.responseSize).received.count,
                       Preface.responseSize, "once the budget refilled a preface is answered again")
    }

    func test_connectionOverTheCircuitCapOfItsSourceIsDiscardedSilentlyNotClosedAtAccept() throws {
        let node = try startNode(name: "circuit-cap", limits: "circuits_per_source = \(circuitsPerSource)")
        let port = node.city.transit.port
        let source = "127.0.30.1"
        // Two connections from the source hold its circuits (they have not sent a preface yet).
        var held: [Int32] = []
        for _ in 0..<circuitsPerSource {
            guard let fd = Net.connect(from: source, port: port, timeout: connectTimeout) else { throw E2EError("cannot connect from \(source)") }
            fds.append(fd)
            held.append(fd)
        }
        Thread.sleep(forTimeInterval: 0.3) // let the node accept them

        let over = try send(try preface(node), from: source, to: port)
        let seen = Net.receive(over, window: silenceWindow, stopAfter: 1)
        XCTAssertEqual(seen.received.count, 0, "a valid preface on a connection over the source's cap gets no answer\n\(node.diagnostics(1500))")
        XCTAssertFalse(seen.closedByPeer, "the connection over the cap is not closed at accept (closed after \(seen.elapsed) s)")

        let neighbour = try send(try preface(node), from: "127.0.30.2", to: port)
        XCTAssertEqual(Net.receive(neighbour, window: answerWindow, stopAfter: Preface.responseSize).received.count,
                       Preface.responseSize, "another source of the same /24 has circuits of its own")
        XCTAssertGreaterThan(try rejections(node, reason: "circuit_limit"), 0, "the refusal is counted as circuit_limit")

        // The cap counts concurrent circuits: once the held ones close, the source is served again.
        for fd in held { shutdown(fd, Int32(SHUT_RDWR)) }
        var answer = 0
        let served = try poll(timeout: 5, interval: 0.3) {
            let fd = try send(try preface(node), from: source, to: port)
            answer = Net.receive(fd, window: 1, stopAfter: Preface.responseSize).received.count
            return answer == Preface.responseSize
        }
        XCTAssertTrue(served, "after its circuits closed the source's preface is answered (last got \(answer) bytes)")
    }
}
