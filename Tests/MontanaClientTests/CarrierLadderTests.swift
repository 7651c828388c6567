import Logging
import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix
import XCTest
@testable import MontanaClient

/// The client's carrier ladder (issue 9 item 4): per front, the configured order filtered to what
/// the front offers and the client can open; what worked last from here goes first.
final class CarrierLadderTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup?

    override func tearDown() {
        try? group?.syncShutdownGracefully()
        group = nil
        super.tearDown()
    }

    /// A connector that never connects (the ladder only needs to know one exists).
    struct Unused: CarrierConnector {
        var profile: CarrierProfile { .t3 }
        func connect(on loop: any EventLoop, endpoint: CarrierEndpoint, connectTimeout: TimeAmount, localAddress: SocketAddress?,
                     initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
            loop.makeFailedFuture(CarrierError.helperUnavailable("unused"))
        }
    }

    private func member(_ seed: UInt8, t3: Bool) throws -> AllianceMember {
        let identity = try IdentityKey(seed: [UInt8](repeating: seed, count: 32))
        let kem = try KEMKey(seed: [UInt8](repeating: seed, count: 32))
        return AllianceMember(nodeID: identity.nodeID, kemPublicKey: kem.publicKey, host: "127.0.0.1", port: Int(seed),
                              country: "DE", roles: [.front, .exit], name: "m\(seed)",
                              endpoints: t3 ? [CarrierEndpoint(profile: .t3, host: "127.0.0.1", port: 1000 + Int(seed), params: ["cert": "x"])] : [])
    }

    private func manager(_ members: [AllianceMember], carriers: [CarrierProfile], connector: Bool) -> CircuitManager {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        var options = CircuitOptions()
        options.carriers = carriers
        if connector { options.connectors[.t3] = Unused() }
        return CircuitManager(loop: group.next(), account: try! IdentityKey(seed: [UInt8](repeating: 9, count: 32)), members: members,
                              defaultSelection: .automatic, alliance: nil, options: options, logger: Logger(label: "test"))
    }

    func test_orderIsFilteredByOfferAndSupportAndStartsWhereItWorked() throws {
        let a = try member(1, t3: true), b = try member(2, t3: true), c = try member(3, t3: false)
        let m = manager([a, b, c], carriers: CarrierProfile.defaultOrder, connector: true)
        try m.loop.submit {
            XCTAssertEqual(m.carrierLadder(for: a).map(\.profile), [.t3, .t0], "default T1, T2, T3, T0: only T3 and T0 offered and openable")
            XCTAssertEqual(m.carrierLadder(for: c).map(\.profile), [.t0], "c offers no T3")
            XCTAssertNil(m.carrierDial(a.endpoints[0]), "T0 is the plain TCP dial")
            XCTAssertNotNil(m.carrierDial(try XCTUnwrap(a.endpoint(.t3))))
            // T3 fails at a, T0 works: a starts at T0 next time, and so does b (same vantage).
            m.recordFront(a, reached: false, error: "refused", endpoint: a.endpoint(.t3))
            m.recordFront(a, reached: true, endpoint: a.endpoint(.t0))
            XCTAssertEqual(m.carrierLadder(for: a).map(\.profile), [.t0, .t3])
            XCTAssertEqual(m.carrierLadder(for: b).map(\.profile), [.t0, .t3], "what worked last from here")
            let o = try XCTUnwrap(m.reachability.observation(a.nodeID))
            XCTAssertEqual(o.workingProfile, .t0)
            XCTAssertEqual(o.profileErrors[.t3], "refused")
            XCTAssertEqual(o.recentByProfile[CarrierProfile.t3.rawValue]?.first?.failures, 1)
            // Reports carry one advert per profile attempted.
            let adverts = m.reachability.reports(country: "ZZ", asn: 0, window: TimeWindow.window(unixSeconds: WallClock.now()), limit: 64)
            XCTAssertEqual(Set(adverts.map(\.profile)), [0, 3])
            // b then works over T3: b starts at T3, a keeps its own T0.
            m.recordFront(b, reached: true, endpoint: b.endpoint(.t3))
            XCTAssertEqual(m.carrierLadder(for: b).map(\.profile), [.t3, .t0])
            XCTAssertEqual(m.carrierLadder(for: a).map(\.profile), [.t0, .t3])
        }.wait()
    }

    func test_withoutAConnectorOrOutsideTheOrderAProfileIsSkipped() throws {
        let a = try member(1, t3: true)
        let noConnector = manager([a], carriers: [.t3, .t0], connector: false)
        XCTAssertEqual(try noConnector.loop.submit { noConnector.carrierLadder(for: a).map(\.profile) }.wait(), [.t0])
        try? group?.syncShutdownGracefully()
        let onlyT3 = manager([a], carriers: [.t3], connector: true)
        XCTAssertEqual(try onlyT3.loop.submit { onlyT3.carrierLadder(for: a).map(\.profile) }.wait(), [.t3])
        try? group?.syncShutdownGracefully()
        let c = try member(3, t3: false)
        let t3OnlyToT0Front = manager([c], carriers: [.t3], connector: true)
        XCTAssertEqual(try t3OnlyToT0Front.loop.submit { t3OnlyToT0Front.carrierLadder(for: c).map(\.profile) }.wait(), [],
                       "a T3-only client has nothing to try at a T0-only front")
    }
}
