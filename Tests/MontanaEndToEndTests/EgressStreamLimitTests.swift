import Foundation
import MontanaCrypto
import MontanaWire
import NIOCore
import NIOPosix
import XCTest

/// `[limits] streams_per_session` (PROTOCOL.md 7.4 MAX_STREAMS_PER_SESSION) against a real exit:
/// with 256 egress streams live on one session the 257th EgressOpen is answered status 3 (rate
/// limited), and once one of them closes a new one is served.
final class EgressStreamLimitTests: XCTestCase {
    /// The default of `streams_per_session`; the test's node leaves `[limits]` out, so the
    /// default itself is what is tested.
    private let streamsPerSession = 256
    /// Bound on one EgressOpenAck: the 256 opens are pipelined on one session and each is a
    /// loopback connect; on 2 loaded cores all are answered within a few seconds.
    private let ackTimeout: TimeInterval = 30
    /// Bound on the destination seeing a connection open or close after the exit acted.
    private let settleTimeout: TimeInterval = 10

    private var rig: EgressRig?

    override func tearDown() {
        rig?.stop()
        rig = nil
        super.tearDown()
    }

    private func status(_ handle: EgressStreamHandle, _ what: String) throws -> EgressOpenStatus {
        try awaitFuture(handle.ack, timeout: ackTimeout, what: what).status
    }

    func test_257thEgressStreamOfASessionGetsStatus3AndClosingOneFreesASlot() throws {
        let rig = try EgressRig.start(name: "stream-limit")
        self.rig = rig
        let (node, listener, probe) = (rig.node, rig.listener, rig.probe)
        let destination = EgressAddress.ipv4([127, 0, 0, 1])

        let held = (0..<streamsPerSession).map { _ in probe.openEgress(destination, port: listener.port) }
        for (i, handle) in held.enumerated() {
            let s = try status(handle, "EgressOpenAck of stream \(i + 1)")
            guard s == .open else {
                return XCTFail("stream \(i + 1) of \(streamsPerSession) is within the limit and must open, got \(s)\n\(node.diagnostics())")
            }
        }
        XCTAssertTrue(poll(timeout: settleTimeout) { listener.open == streamsPerSession },
                      "the destination holds \(streamsPerSession) connections (has \(listener.open))")

        let over = probe.openEgress(destination, port: listener.port)
        XCTAssertEqual(try status(over, "the 257th EgressOpenAck"), .rateLimited,
                       "with \(streamsPerSession) streams live the 257th is answered status 3\n\(node.diagnostics())")
        XCTAssertEqual(EgressOpenStatus.rateLimited.rawValue, 3)
        XCTAssertEqual(listener.accepted, streamsPerSession, "the refused open never reached the destination")
        for (i, handle) in held.enumerated() where try handle.hasEnded() {
            XCTFail("stream \(i + 1) ended; all \(streamsPerSession) must stay live")
        }
        let refusals = try PrometheusText.scrape(node.city).lines("montana_policy_refusals_total")
        XCTAssertTrue(refusals.contains("streams_per_session"), "the refusal is counted with its reason: \(refusals)")

        // Closing one stream gives its slot back: the exit closes its destination connection and
        // the next open on the same session is served.
        held[0].reset()
        XCTAssertTrue(poll(timeout: settleTimeout) { listener.open == streamsPerSession - 1 },
                      "the reset stream's destination connection is closed (open: \(listener.open))")
        let replacement = probe.openEgress(destination, port: listener.port)
        XCTAssertEqual(try status(replacement, "the EgressOpenAck after one closed"), .open,
                       "with one of \(streamsPerSession) closed a new stream is served\n\(node.diagnostics())")
        // And the limit holds again at 256 (the refusal and the close were not leaked or double counted).
        let overAgain = probe.openEgress(destination, port: listener.port)
        XCTAssertEqual(try status(overAgain, "the next over-limit EgressOpenAck"), .rateLimited,
                       "back at \(streamsPerSession) live streams the next open is refused again")
        XCTAssertTrue(node.process.isRunning, "the exit stays up")
    }
}
