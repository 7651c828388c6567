import MontanaTransport
@testable import MontanaNode
import XCTest

/// The `[admission]` section and how `[limits]` folds into it (the budgets themselves are tested
/// in MontanaTransportTests.SourceAdmissionTests and the end-to-end PrefaceFloodTests).
final class LimiterTests: XCTestCase {
    let fixture = try! ConfigFixture()

    func test_admissionDefaultsFollowTheLimitsSection() throws {
        let config = try fixture.parseNode(fixture.nodeText())
        let a = config.admission
        // The fixture's [limits]: 32 per source, 1024 in total, 100 handshakes/s.
        XCTAssertEqual(a.circuitsPerSource, 32)
        XCTAssertEqual(a.circuitsTotal, 1024)
        XCTAssertEqual(a.handshakesPerSecond, 100)
        XCTAssertEqual(a.networkHandshakesPerSecond, 25, "a quarter of the handshake budget per network")
        XCTAssertEqual(a.memberHandshakesPerSecond, 50, "half per member")
        XCTAssertEqual(a.circuitsPerMember, 512)
        XCTAssertEqual(a.circuitsPerNetwork, 256)
        XCTAssertEqual(a.replayCapacity, 65536)
        XCTAssertEqual(a.replayPerNetwork, 8192)
        XCTAssertEqual(a.replayPerMember, 32768)
        XCTAssertEqual([a.ipv4SourceBits, a.ipv4NetworkBits, a.ipv6SourceBits, a.ipv6NetworkBits], [32, 24, 64, 48])
        XCTAssertEqual([a.sourcePrefacesPerSecond, a.sourcePrefaceBurst, a.networkPrefacesPerSecond, a.networkPrefaceBurst], [20, 40, 50, 100])
        XCTAssertEqual([a.discardPerNetwork, a.discardTotal, a.maxPrefixes], [64, 4096, 65536])
    }

    func test_everyAdmissionKeyIsReadAndTheReplayShareFollowsTheCapacity() throws {
        let text = fixture.nodeText(extra: """

        [admission]
        ipv4_source_prefix = 31
        ipv4_network_prefix = 22
        ipv6_source_prefix = 56
        ipv6_network_prefix = 40
        source_prefaces_per_second = 5
        source_preface_burst = 10
        network_prefaces_per_second = 30
        network_preface_burst = 60
        node_prefaces_per_second = 500
        node_preface_burst = 700
        network_handshakes_per_second = 10
        member_handshakes_per_second = 60
        circuits_per_network = 100
        circuits_per_member = 900
        replay_capacity = 1000
        discard_per_network = 8
        discard_total = 80
        max_prefixes = 2048

        """)
        let a = try fixture.parseNode(text).admission
        XCTAssertEqual([a.ipv4SourceBits, a.ipv4NetworkBits, a.ipv6SourceBits, a.ipv6NetworkBits], [31, 22, 56, 40])
        XCTAssertEqual([a.sourcePrefacesPerSecond, a.sourcePrefaceBurst, a.networkPrefacesPerSecond, a.networkPrefaceBurst,
                        a.nodePrefacesPerSecond, a.nodePrefaceBurst], [5, 10, 30, 60, 500, 700])
        XCTAssertEqual([a.networkHandshakesPerSecond, a.memberHandshakesPerSecond, a.circuitsPerNetwork, a.circuitsPerMember],
                       [10, 60, 100, 900])
        XCTAssertEqual([a.replayCapacity, a.replayPerNetwork, a.replayPerMember], [1000, 125, 500], "shares default to 1/8 and 1/2")
        XCTAssertEqual([a.discardPerNetwork, a.discardTotal, a.maxPrefixes], [8, 80, 2048])
    }

    func test_admissionErrorsNameFileKeyAndProblem() {
        func error(_ body: String) -> ConfigurationError? {
            fixture.nodeError(fixture.nodeText(extra: "\n[admission]\n\(body)\n"))
        }
        XCTAssertEqual(error("network_handshakes_per_second = 150"),
                       .invalidValue(file: "node.toml", key: "admission.network_handshakes_per_second",
                                     problem: "150 exceeds limits.handshakes_per_second (100)"))
        XCTAssertEqual(error("ipv4_source_prefix = 20"),
                       .invalidValue(file: "node.toml", key: "admission.ipv4_source_prefix",
                                     problem: "/20 is wider than ipv4_network_prefix (/24)"))
        XCTAssertEqual(error("ipv6_network_prefix = 129"),
                       .invalidValue(file: "node.toml", key: "admission.ipv6_network_prefix", problem: "129 is out of range (16-128)"))
        XCTAssertEqual(error("replay_capacity = 100\nreplay_per_network = 200"),
                       .invalidValue(file: "node.toml", key: "admission.replay_per_network", problem: "200 exceeds replay_capacity (100)"))
        XCTAssertEqual(error("discard_per_network = 0"),
                       .invalidValue(file: "node.toml", key: "admission.discard_per_network", problem: "0 is out of range (1-1000000)"))
        XCTAssertEqual(error("circuits_per_network = 8"),
                       .invalidValue(file: "node.toml", key: "admission.circuits_per_network",
                                     problem: "8 is below limits.circuits_per_source (32)"))
        XCTAssertEqual(error("replay_capacty = 3"),
                       .unknownKey(file: "node.toml", key: "admission.replay_capacty", suggestion: "admission.replay_capacity"))
    }

    func test_membersAreRecognisedByTheirEndpointAddress() throws {
        let config = try fixture.parseNode(fixture.nodeText(extra: try ConfigFixture.peer(endpoint: "198.51.100.7:7443")))
        let members = AdmissionSettings.memberAddresses(config.peers)
        XCTAssertEqual(members, [SourceAddress("198.51.100.7")!])
        let admission = SourceAdmission(limits: config.admission, members: members)
        XCTAssertTrue(admission.connect(SourceAddress("198.51.100.7")).isMember)
        XCTAssertFalse(admission.connect(SourceAddress("198.51.100.8")).isMember)
    }
}
