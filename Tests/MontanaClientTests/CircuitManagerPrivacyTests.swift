import Logging
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix
import XCTest
@testable import MontanaClient

/// Issue 6 item 8: the client never makes an exit its own front unless the user allows it,
/// and clock arithmetic in the circuit table never traps.
final class CircuitManagerPrivacyTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup?

    override func tearDown() {
        try? group?.syncShutdownGracefully()
        group = nil
        super.tearDown()
    }

    private static func member(_ seed: UInt8, _ roles: NodeRoles, port: Int) throws -> AllianceMember {
        let identity = try IdentityKey(seed: [UInt8](repeating: seed, count: 32))
        let kem = try KEMKey(seed: [UInt8](repeating: seed, count: 32))
        return AllianceMember(nodeID: identity.nodeID, kemPublicKey: kem.publicKey, host: "127.0.0.1", port: port,
                              country: roles.contains(.exit) ? "DE" : nil, roles: roles, name: "m\(seed)")
    }

    private func manager(_ members: [AllianceMember], options: CircuitOptions = CircuitOptions()) throws -> CircuitManager {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        return CircuitManager(loop: group.next(), account: try IdentityKey(seed: [UInt8](repeating: 9, count: 32)), members: members,
                              defaultSelection: .automatic, alliance: nil, options: options, logger: Logger(label: "test"))
    }

    func test_theExitIsNeverItsOwnFrontByDefault() throws {
        let a = try Self.member(1, [.front, .exit], port: 1), b = try Self.member(2, [.front, .exit], port: 2)
        let c = try Self.member(3, [.front], port: 3)
        let manager = try manager([a, b, c])
        XCTAssertEqual(manager.frontCandidates(for: a).map(\.nodeID), [b.nodeID, c.nodeID])
        XCTAssertEqual(manager.frontCandidates(for: b).map(\.nodeID), [a.nodeID, c.nodeID])
        XCTAssertTrue(manager.exitsWithoutOtherFronts().isEmpty)
    }

    func test_exitAsFrontPutsTheExitLast() throws {
        let a = try Self.member(1, [.front, .exit], port: 1), c = try Self.member(3, [.front], port: 3)
        let manager = try manager([a, c], options: CircuitOptions(exitAsFront: true))
        XCTAssertEqual(manager.frontCandidates(for: a).map(\.nodeID), [c.nodeID, a.nodeID])
        XCTAssertTrue(manager.exitsWithoutOtherFronts().isEmpty)
    }

    func test_anExitWithNoOtherFrontFailsWithThePrivacyErrorWithoutDialling() throws {
        let a = try Self.member(1, [.front, .exit], port: 1)
        let manager = try manager([a])
        XCTAssertEqual(manager.exitsWithoutOtherFronts().map(\.nodeID), [a.nodeID])
        XCTAssertTrue(manager.frontCandidates(for: a).isEmpty)
        XCTAssertThrowsError(try manager.loop.flatSubmit { manager.session(to: a) }.wait()) { error in
            XCTAssertEqual(error as? CircuitManagerError, .exitAsFrontRequired)
        }
        XCTAssertEqual(CircuitManagerError.exitAsFrontRequired.description,
                       "no front other than the exit is reachable; set exit_as_front = true to let the exit see your address")
    }

    /// Other fronts that do not answer at all (nothing listens) end in "unreachable from this
    /// network", naming each front tried with its profile and error, and the privacy setting
    /// that would let the exit be its own front: the exit itself was never dialled.
    func test_unreachableOtherFrontsAreNamedAndTheExitIsNotDialledDirectly() throws {
        let closedPort = try Self.closedLoopbackPort()
        let a = try Self.member(1, [.front, .exit], port: closedPort)
        let c = try Self.member(3, [.front], port: closedPort), d = try Self.member(4, [.front], port: closedPort)
        let manager = try manager([a, c, d])
        XCTAssertThrowsError(try manager.loop.flatSubmit { manager.session(to: a) }.wait()) { error in
            guard case .unreachableFromHere(let text)? = error as? CircuitManagerError else {
                return XCTFail("expected unreachableFromHere, got \(error)")
            }
            XCTAssertTrue(text.hasPrefix("country DE (exit m1) is unreachable from this network"), text)
            XCTAssertTrue(text.contains("m3 127.0.0.1:\(closedPort) over T0:"), text)
            XCTAssertTrue(text.contains("m4 127.0.0.1:\(closedPort) over T0:"), text)
            XCTAssertFalse(text.contains("m1 127.0.0.1"), "the exit is not among the fronts tried: \(text)")
            XCTAssertTrue(text.contains("exit_as_front = true"), text)
        }
        let seen = try manager.loop.submit { manager.reachability.all }.wait()
        XCTAssertEqual(seen.map(\.label), ["m3", "m4"])
        XCTAssertEqual(seen.map(\.state), [.unreachable, .unreachable])
        XCTAssertEqual(seen.map(\.failures), [1, 1])
    }

    /// Feeler probes (issue 8 item 2): each dials the front known least from here — untried
    /// first — and records the outcome like any attempt.
    func test_feelerProbesTryTheLeastKnownFrontAndRecordIt() throws {
        let closedPort = try Self.closedLoopbackPort()
        let c = try Self.member(3, [.front], port: closedPort), d = try Self.member(4, [.front], port: closedPort)
        let manager = try manager([c, d])
        for expected in [1, 2] {
            try manager.loop.submit { manager.feelOneFront() }.wait()
            XCTAssertTrue(poll(timeout: 10) {
                (try? manager.loop.submit { manager.reachability.all.filter { $0.state == .unreachable }.count }.wait()) == expected
            }, "feeler \(expected) recorded a failure")
        }
        let seen = try manager.loop.submit { manager.reachability.all }.wait()
        XCTAssertEqual(Set(seen.map(\.label)), ["m3", "m4"], "the second feeler tried the other, untried front")
        XCTAssertTrue(seen.allSatisfy { $0.failures == 1 && $0.lastError == "connection refused or reset" }, "\(seen.map(\.lastError))")
    }

    func test_circuitAgeIsZeroWhenTheClockStepsBack() {
        XCTAssertEqual(CircuitManager.elapsed(since: 100, now: 160), 60)
        XCTAssertEqual(CircuitManager.elapsed(since: 100, now: 100), 0)
        XCTAssertEqual(CircuitManager.elapsed(since: 1_800_000_000, now: 1_799_996_400), 0, "an hour back")
        XCTAssertEqual(CircuitManager.elapsed(since: .max, now: 0), 0)
    }

    /// A loopback port nothing listens on: bound, read back, released.
    private static func closedLoopbackPort() throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress?.port ?? 0
        try channel.close().wait()
        return port
    }
}

private func poll(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return condition()
}
