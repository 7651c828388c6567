import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class CorroborationTests: XCTestCase {
    let now = Fixtures.now

    private func corroboration(exit: TestNode, attesters: [TestNode], country: String? = nil,
                               method: Attestation.Method = .egressGeolocated) throws -> Corroboration {
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, now: now)
        for n in [exit] + attesters { XCTAssertEqual(s.offerRecord(try n.signedRecord(), now: now), .added) }
        for a in attesters { XCTAssertEqual(s.offerAttestation(try a.attest(exit, country: country, method: method), now: now), .added) }
        return try XCTUnwrap(s.member(exit.nodeID, now: now)).corroboration
    }

    func test_twoIndependentAttestersCorroborateAnExit() throws {
        let exit = try TestNode(country: "DE", host: "198.51.100.1", operator: "ops-exit")
        let a = try TestNode(country: "NL", host: "203.0.113.1", operator: "ops-a")
        let b = try TestNode(country: "PL", host: "192.0.2.1", operator: "ops-b")
        let c = try corroboration(exit: exit, attesters: [a, b])
        XCTAssertEqual(c, Corroboration(state: .corroborated, attesters: 2, contradicting: 0, lastAttestedWindow: Fixtures.window))
        XCTAssertEqual(DirectoryStore.DIRECTORY_QUORUM, 2)
    }

    func test_oneAttesterIsAdvisory() throws {
        let exit = try TestNode(operator: "x")
        let a = try TestNode(host: "203.0.113.1", operator: "ops-a")
        XCTAssertEqual(try corroboration(exit: exit, attesters: [a]).state, .advisory)
        XCTAssertEqual(try corroboration(exit: try TestNode(), attesters: []),
                       Corroboration(state: .advisory, attesters: 0, contradicting: 0, lastAttestedWindow: nil))
    }

    func test_sameOperatorOrSameSlash16CountsOnce() throws {
        let exit = try TestNode(operator: "x")
        let a = try TestNode(host: "203.0.113.1", operator: "ops-a")
        let sameOperator = try TestNode(host: "192.0.2.1", operator: "ops-a")
        let c1 = try corroboration(exit: exit, attesters: [a, sameOperator])
        XCTAssertEqual(c1.state, .advisory)
        XCTAssertEqual(c1.attesters, 1)
        let sameNet = try TestNode(host: "203.0.200.7", operator: "ops-b")
        let c2 = try corroboration(exit: exit, attesters: [a, sameNet])
        XCTAssertEqual(c2.state, .advisory)
        XCTAssertEqual(c2.attesters, 1)
        // Unlabelled attesters share the empty label.
        let u1 = try TestNode(host: "203.0.113.1"), u2 = try TestNode(host: "192.0.2.1")
        XCTAssertEqual(try corroboration(exit: exit, attesters: [u1, u2]).state, .advisory)
    }

    func test_anIndependentPairIsFoundWhereGreedyWouldMissIt() throws {
        // Newest first, greedy takes x and then can take neither y (same /16) nor z (same operator);
        // y and z are independent of each other.
        let exit = try TestNode(operator: "e")
        let x = try TestNode(host: "203.0.113.1", operator: "ops-a")
        let y = try TestNode(host: "203.0.113.2", operator: "ops-b")
        let z = try TestNode(host: "192.0.2.1", operator: "ops-a")
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, now: now)
        for n in [exit, x, y, z] { XCTAssertEqual(s.offerRecord(try n.signedRecord(), now: now), .added) }
        XCTAssertEqual(s.offerAttestation(try x.attest(exit, window: Fixtures.window), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try y.attest(exit, window: Fixtures.window - 1), now: now), .added)
        XCTAssertEqual(s.offerAttestation(try z.attest(exit, window: Fixtures.window - 2), now: now), .added)
        let c = try XCTUnwrap(s.member(exit.nodeID, now: now)).corroboration
        XCTAssertEqual(c.state, .corroborated)
        XCTAssertEqual(c.attesters, 2)
    }

    func test_sessionOnlyAndOtherCountryAttestationsDoNotCorroborate() throws {
        let exit = try TestNode(country: "DE", operator: "e")
        let a = try TestNode(host: "203.0.113.1", operator: "ops-a")
        let b = try TestNode(host: "192.0.2.1", operator: "ops-b")
        let sessionOnly = try corroboration(exit: exit, attesters: [a, b], method: .sessionVerified)
        XCTAssertEqual(sessionOnly, Corroboration(state: .advisory, attesters: 0, contradicting: 0, lastAttestedWindow: nil))
        let otherCountry = try corroboration(exit: exit, attesters: [a, b], country: "FR")
        XCTAssertEqual(otherCountry, Corroboration(state: .advisory, attesters: 0, contradicting: 2, lastAttestedWindow: nil))
    }

    func test_frontsAreAlwaysAdvisoryButTheirAttestersAreCounted() throws {
        let front = try TestNode(roles: [.front], operator: "f")
        let a = try TestNode(host: "203.0.113.1", operator: "ops-a")
        let b = try TestNode(host: "192.0.2.1", operator: "ops-b")
        XCTAssertEqual(try corroboration(exit: front, attesters: [a, b]),
                       Corroboration(state: .advisory, attesters: 2, contradicting: 0, lastAttestedWindow: Fixtures.window))
    }

    func test_staleAttestationsAndDepartedAttestersStopCounting() throws {
        let exit = try TestNode(operator: "e")
        let a = try TestNode(host: "203.0.113.1", operator: "ops-a")
        let b = try TestNode(host: "192.0.2.1", operator: "ops-b")
        let s = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, now: now)
        for n in [exit, a, b] { XCTAssertEqual(s.offerRecord(try n.signedRecord(expiresIn: 3 * 86400), now: now), .added) }
        for n in [a, b] { XCTAssertEqual(s.offerAttestation(try n.attest(exit), now: now), .added) }
        XCTAssertEqual(s.member(exit.nodeID, now: now)?.corroboration.state, .corroborated)
        // 1441 windows later everyone has re-signed; the old attestations are still held but stale.
        let later = now + 1441 * 60
        for n in [exit, a, b] { XCTAssertEqual(s.offerRecord(try n.signedRecord(now: later), now: later), .updated) }
        XCTAssertEqual(s.attestationCount, 2)
        XCTAssertEqual(try XCTUnwrap(s.member(exit.nodeID, now: later)).corroboration,
                       Corroboration(state: .advisory, attesters: 0, contradicting: 0, lastAttestedWindow: nil))
        _ = s.expire(now: later)
        XCTAssertEqual(s.attestationCount, 0)

        // An attester whose own record expired no longer counts, even before `expire` runs.
        let s2 = try DirectoryStore(path: nil, alliance: Fixtures.closed.0, now: now)
        XCTAssertEqual(s2.offerRecord(try exit.signedRecord(), now: now), .added)
        XCTAssertEqual(s2.offerRecord(try a.signedRecord(expiresIn: 60), now: now), .added)
        XCTAssertEqual(s2.offerRecord(try b.signedRecord(), now: now), .added)
        for n in [a, b] { XCTAssertEqual(s2.offerAttestation(try n.attest(exit), now: now), .added) }
        XCTAssertEqual(s2.member(exit.nodeID, now: now)?.corroboration.state, .corroborated)
        XCTAssertEqual(s2.member(exit.nodeID, now: now + 61)?.corroboration.attesters, 1)
    }
}
