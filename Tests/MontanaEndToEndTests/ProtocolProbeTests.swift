import Foundation
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix
import XCTest

/// Protocol-level probes against one shared default demo, built with the product's libraries
/// (prefaces, Noise_PQ XX, yamux) or raw sockets: what a session without (or with a bad)
/// EgressAuth may do, and what a prober learns from a front.
final class ProtocolProbeTests: XCTestCase {
    private static let shared = SharedDemo()
    private let loops = OnDemandEventLoop()

    override class func setUp() { super.setUp(); shared.start() }
    override class func tearDown() { shared.stop(); super.tearDown() }

    override func tearDown() {
        loops.shutdown()
        super.tearDown()
    }

    private static let features = TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0)))

    func test_sessionWithoutEgressAuthCannotOpenEgress() throws {
        let demo = try Self.shared.running()
        let front = try demo.status.city("amsterdam"), exit = try demo.status.city("berlin")
        let session = try ProbeSession.open(on: loops.next(), front: front, target: exit, identity: try IdentityKey.generate()) { _ in
            TLV.encode([Self.features]) // features only: no EgressAuth
        }
        defer { session.close() }
        let established = try awaitFuture(session.established, timeout: 30, what: "the handshake with \(exit.name)")
        XCTAssertNotNil(established, "the session to \(exit.name) did not establish\n\(demo.diagnostics())")
        XCTAssertEqual(established?.peer.identityPublicKey, Hex.decode(exit.identityPK), "the responder is \(exit.name)")

        let egress = try session.stream("/montana/egress/1.0.0")
        XCTAssertFalse(egress.negotiated, "a session without EgressAuth must not get /montana/egress/1.0.0: \(egress)")

        let probe = SecureRandom.bytes(32)
        let ping = try session.stream("/ipfs/ping/1.0.0", send: probe, expect: 32)
        XCTAssertTrue(ping.negotiated, "ping is served on any session: \(ping)")
        XCTAssertEqual(ping.received, probe, "ping echoes its 32 bytes")
        XCTAssertTrue(session.channel.isActive, "the session stays up after the refused egress stream")
    }

    func test_badEgressAuthClosesTheConnectionWithoutASession() throws {
        let demo = try Self.shared.running()
        let front = try demo.status.city("amsterdam"), exit = try demo.status.city("berlin")
        let before = try PrometheusText.scrape(exit)
        let account = try IdentityKey.generate()
        let otherExit = try IdentityKey.generate().nodeID
        let session = try ProbeSession.open(on: loops.next(), front: front, target: exit, identity: account) { h in
            // A proof for some other exit: valid signature, wrong exit node id.
            let auth = try EgressAuthProof.build(account: account, exit: otherExit, bindingHash: h, now: WallClock.now())
            return TLV.encode([Self.features, TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        defer { session.close() }
        // The exit closes its connection; the front passes that on as EOF (or closes outright).
        XCTAssertTrue(completes(session.peerClosed, within: 10),
                      "the exit (through the front) must close the connection after a bad EgressAuth\n\(demo.diagnostics())")
        let ping = try? session.stream("/ipfs/ping/1.0.0", send: SecureRandom.bytes(32), expect: 32, timeout: 3)
        XCTAssertNotEqual(ping?.received.count, 32, "nothing answers on a refused session: \(String(describing: ping))")

        // Egress sessions only: the demo's own client may open control sessions (feelers, the
        // directory) to berlin meanwhile, and those count in montana_sessions_total.
        let after = try PrometheusText.scrape(exit)
        XCTAssertEqual(after.value("montana_egress_sessions_total"), before.value("montana_egress_sessions_total"),
                       "no egress session may be established on \(exit.name): before \(before.lines("montana_egress_sessions_total")), "
                       + "after \(after.lines("montana_egress_sessions_total")); handshake failures after: "
                       + after.lines("montana_handshake_failures_total"))
        XCTAssertGreaterThan(after.value("montana_handshake_failures_total", label: "reason", "admission"),
                             before.value("montana_handshake_failures_total", label: "reason", "admission"),
                             "the refusal is counted as an admission failure")
    }

    func test_frontGivenGarbageSendsNothingBack() throws {
        let demo = try Self.shared.running()
        let front = try demo.status.city("warsaw")
        let garbage = SecureRandom.bytes(Preface.size)
        XCTAssertEqual(garbage.count, 1632)
        let seen = try Net.exchange(host: front.transit.host, port: front.transit.port, send: garbage, window: 3)
        XCTAssertEqual(seen.received.count, 0,
                       "a front must not answer garbage; got \(seen.received.count) bytes (closed by peer: \(seen.closedByPeer))")
    }

    func test_replayedPrefaceGetsNoAnswer() throws {
        let demo = try Self.shared.running()
        let front = try demo.status.city("warsaw")
        guard let kem = Hex.decode(front.kemPK), let id = NodeID(hex: front.nodeID) else {
            throw E2EError("bad keys for \(front.name) in the status JSON")
        }
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: id.multihash),
                             ext: RelayExtension(ts: WallClock.now(), alliance: front.allianceUUID, purpose: .session))
        let sealed = try Preface.seal(.hop(hop), to: kem)
        XCTAssertEqual(sealed.bytes.count, 1632)

        let first = try Net.exchange(host: front.transit.host, port: front.transit.port, send: sealed.bytes, window: 5, stopAfter: Preface.responseSize)
        XCTAssertEqual(first.received.count, Preface.responseSize,
                       "a fresh preface naming the front gets exactly the 80-byte answer\n\(demo.diagnostics())")
        if first.received.count == Preface.responseSize {
            let answer = try Preface.openResponse(first.received, keys: sealed.keys, expecting: .hop)
            guard case .hop(let message) = answer else { return XCTFail("answer is not a HopMessage: \(answer)") }
            XCTAssertEqual(message.type, .status)
            XCTAssertEqual(message.status, .ok)
        }

        let replay = try Net.exchange(host: front.transit.host, port: front.transit.port, send: sealed.bytes, window: 3)
        XCTAssertEqual(replay.received.count, 0,
                       "a replayed preface gets no answer; got \(replay.received.count) bytes (closed by peer: \(replay.closedByPeer))")
    }
}
