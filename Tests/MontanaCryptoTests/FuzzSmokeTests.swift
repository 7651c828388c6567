import MontanaCrypto
import MontanaFuzzTargets
import XCTest

/// Every decoder survives random and mutated inputs (the libFuzzer runs go deeper; this keeps the
/// property in the ordinary test run).
final class FuzzSmokeTests: XCTestCase {
    func test_everyDecoderSurvivesRandomInput() {
        var rng = SystemRandomNumberGenerator()
        for target in FuzzTarget.allCases {
            let runs = [.handshakeMessage2, .handshakeMessage3, .preface, .egressAuth, .session].contains(target) ? 20 : 400
            for _ in 0..<runs {
                let size = Int.random(in: 0...2048, using: &rng)
                target.run((0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) })
            }
            for size in [0, 1, 2, 39, 47, 1217, 1632, 5295] {
                target.run([UInt8](repeating: 0, count: size))
                target.run([UInt8](repeating: 0xff, count: size))
            }
        }
    }

    func test_sessionTargetGetsPastAuthenticationToTheServices() {
        let reached = FuzzTarget.sessionHarnessReachesServices()
        XCTAssertTrue(reached.pingEchoed, "the stateful target's session answers a ping: its input reaches the stream services")
        XCTAssertTrue(reached.egressNegotiated, "the egress service is negotiated (EgressAuth was accepted)")
    }
}
