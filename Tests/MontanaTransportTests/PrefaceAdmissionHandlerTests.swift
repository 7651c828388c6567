import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOEmbedded
import XCTest

/// `PrefaceAcceptHandler` with a real `SourceAdmission` and replay memory on embedded channels
/// that carry a chosen source address: what is answered, what is discarded, what is remembered.
final class PrefaceAdmissionHandlerTests: XCTestCase {
    static let hop = try! KEMKey(seed: [UInt8](repeating: 0x21, count: 32))
    static let identity = try! IdentityKey.generate()

    /// Terminates every preface (a session responder that is never driven further).
    struct TerminatingRouter: CircuitRouter {
        func route(_ message: Preface.Message) -> RouteDecision {
            .terminate(.responder(identity: PrefaceAdmissionHandlerTests.identity, payload: []) { _, _ in SessionAdmission() }) { _ in }
        }
    }

    private func preface() throws -> [UInt8] {
        let hop = HopMessage(type: .connect, peer: RelayPeer(id: Self.identity.nodeID.multihash),
                             ext: RelayExtension(ts: WallClock.now(), purpose: .session))
        return try Preface.seal(.hop(hop), to: Self.hop.publicKey).bytes
    }

    /// A connection from `source` that sends `bytes`; returns the channel and what it got back.
    private func send(_ bytes: [UInt8], from source: String, gate: SharedPrefaceGate, admission: SourceAdmission) throws
        -> (channel: EmbeddedChannel, answer: Int) {
        let channel = EmbeddedChannel()
        channel.remoteAddress = try SocketAddress(ipAddress: source, port: 40000)
        try channel.pipeline.syncOperations.addHandler(PrefaceAcceptHandler(gate: gate, admission: admission, router: TerminatingRouter()))
        try channel.connect(to: try SocketAddress(ipAddress: source, port: 40000)).wait()
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        var answered = 0
        while let out = try channel.readOutbound(as: ByteBuffer.self) { answered += out.readableBytes }
        return (channel, answered)
    }

    func test_prefaceRefusedOverTheHandshakeShareIsNotRememberedAndGetsNoAnswer() throws {
        let clock = ManualClock()
        var limits = AdmissionLimits()
        limits.handshakesPerSecond = 1
        limits.networkHandshakesPerSecond = 1
        let admission = SourceAdmission(limits: limits, clock: clock.function)
        let gate = SharedPrefaceGate(key: Self.hop)
        let first = try preface(), second = try preface()

        let a = try send(first, from: "192.0.2.1", gate: gate, admission: admission)
        XCTAssertEqual(a.answer, Preface.responseSize, "within the share: answered")
        let b = try send(second, from: "192.0.2.2", gate: gate, admission: admission)
        XCTAssertEqual(b.answer, 0, "over the /24's handshake share: no byte back")
        XCTAssertTrue(b.channel.isActive, "and not closed: discarded like garbage")
        XCTAssertEqual(gate.count, 1, "the refused preface is not remembered")

        clock.advance(seconds: 1)
        let c = try send(second, from: "192.0.2.2", gate: gate, admission: admission)
        XCTAssertEqual(c.answer, Preface.responseSize, "the refused preface was not remembered, so it is not a replay")
        XCTAssertEqual(gate.count, 2)
        clock.advance(seconds: 1)
        let d = try send(first, from: "192.0.2.3", gate: gate, admission: admission)
        XCTAssertEqual(d.answer, 0, "an answered preface is remembered: its replay gets nothing")
        XCTAssertTrue(d.channel.isActive)
    }

    func test_prefacesOverTheSourceBudgetAreNotDecapsulatedAndTheConnectionStaysOpen() throws {
        var limits = AdmissionLimits()
        limits.sourcePrefacesPerSecond = 1
        limits.sourcePrefaceBurst = 2
        let admission = SourceAdmission(limits: limits, clock: ManualClock().function)
        let gate = SharedPrefaceGate(key: Self.hop)
        XCTAssertEqual(try send(try preface(), from: "192.0.2.1", gate: gate, admission: admission).answer, Preface.responseSize)
        XCTAssertEqual(try send(try preface(), from: "192.0.2.1", gate: gate, admission: admission).answer, Preface.responseSize)
        let over = try send(try preface(), from: "192.0.2.1", gate: gate, admission: admission)
        XCTAssertEqual(over.answer, 0, "the third preface within the burst window gets no answer")
        XCTAssertTrue(over.channel.isActive, "it is discarded silently, not closed")
        XCTAssertEqual(gate.count, 2, "nothing of the refused preface reached the replay memory")
        XCTAssertEqual(try send(try preface(), from: "192.0.2.2", gate: gate, admission: admission).answer, Preface.responseSize,
                       "another source of the same /24 still has its own budget")
    }

    func test_connectionOverTheCircuitCapIsDiscardedNotClosed() throws {
        var limits = AdmissionLimits()
        limits.circuitsPerSource = 1
        let admission = SourceAdmission(limits: limits, clock: ManualClock().function)
        let gate = SharedPrefaceGate(key: Self.hop)
        let held = try send([0x01], from: "192.0.2.1", gate: gate, admission: admission)
        XCTAssertTrue(held.channel.isActive)
        XCTAssertEqual(admission.activeCircuits, 1)
        let over = try send(try preface(), from: "192.0.2.1", gate: gate, admission: admission)
        XCTAssertTrue(over.channel.isActive, "over the circuit cap the connection is not closed at accept")
        XCTAssertEqual(over.answer, 0, "and a valid preface on it gets no answer")
        XCTAssertEqual(admission.activeDiscarders, 1, "it is a discarder, outside the circuit count")
        XCTAssertEqual(admission.activeCircuits, 1)
        // The discard limit still applies: 16 KiB more and it is closed.
        try over.channel.writeInbound(ByteBuffer(bytes: [UInt8](repeating: 0, count: 16384)))
        XCTAssertFalse(over.channel.isActive, "closed once it sent its discard limit")
    }
}
