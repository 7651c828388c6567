import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class RecordValidatorTests: XCTestCase {
    let alliance = Fixtures.closed.0
    let now = Fixtures.now

    private func outcome(_ signed: [UInt8], alliance: AllianceDocument? = nil, now: UInt64? = nil) -> RecordRejection? {
        switch RecordValidator.validate(signed, alliance: alliance ?? self.alliance, now: now ?? self.now) {
        case .success: return nil
        case .failure(let why): return why
        }
    }

    func test_endorsedRecordIsAcceptedWithItsDerivedFields() throws {
        let node = try TestNode(host: "203.0.113.9", operator: "ops-a")
        let signed = try node.signedRecord()
        guard case .success(let v) = RecordValidator.validate(signed, alliance: alliance, now: now) else { return XCTFail() }
        XCTAssertEqual(v.nodeID, node.nodeID)
        XCTAssertEqual(v.signed, signed)
        XCTAssertEqual(v.window, Fixtures.window)
        XCTAssertEqual(v.operatorLabel, "ops-a")
        XCTAssertEqual(v.addressGroup, "203.0")
        XCTAssertEqual(v.endorsement?.nodeID, node.nodeID.bytes)
    }

    func test_badSignatureAndNodeIDMismatch() throws {
        let node = try TestNode()
        var signed = try node.signedRecord()
        signed[signed.count - 1] ^= 1
        XCTAssertEqual(outcome(signed), .badSignature)
        // Signed by another key than the record's identity.
        let impostor = try TestNode()
        let forged = try SignedObject.sign(try node.record().encode(), label: SignedObject.recordLabel, with: impostor.identity).encode()
        XCTAssertEqual(outcome(forged), .badSignature)
        // The entry names another node than H(identity_pk).
        var r = try node.record()
        r.entry.exitNodeID = impostor.nodeID.bytes
        XCTAssertEqual(outcome(try node.signed(r)), .nodeIDMismatch)
    }

    func test_endorsementRules() throws {
        let node = try TestNode(operator: "ops-a")
        XCTAssertEqual(outcome(try node.signedRecord(endorsedBy: .none)), .noEndorsement)
        XCTAssertNil(outcome(try node.signedRecord(endorsedBy: .none), alliance: Fixtures.openAlliance), "open alliances need none")
        XCTAssertEqual(outcome(try node.signedRecord(endorsedBy: .otherAlliance)), .foreignEndorsement)
        XCTAssertEqual(outcome(try node.signedRecord(endorsedBy: .wrongUUID)), .foreignEndorsement, "right key, other alliance UUID")
        XCTAssertEqual(outcome(try node.signedRecord(endorsedBy: .otherNode)), .badEndorsement)
        XCTAssertEqual(outcome(try node.signedRecord(endorsedBy: .otherOperator("ops-b"))), .badEndorsement)
        XCTAssertEqual(outcome(try node.signedRecord(endorsedBy: .garbage)), .badEndorsement)
        // A record without a label needs an endorsement without one.
        let unlabelled = try TestNode()
        XCTAssertNil(outcome(try unlabelled.signedRecord()))
        XCTAssertEqual(outcome(try unlabelled.signedRecord(endorsedBy: .otherOperator("x"))), .badEndorsement)
    }

    /// The entry's bytes inside the record payload, so one byte can be changed by hand.
    private func payloadWithEntry(_ node: TestNode, patch: (inout [UInt8]) -> Void) throws -> [UInt8] {
        let r = try node.record()
        let entry = r.entry.encode()
        var patched = entry
        patch(&patched)
        return try node.signPayload(r.encode().replacing(entry, with: patched))
    }

    func test_unassignedCountryAndUnknownCapacityAreRejectedByName() throws {
        let node = try TestNode()
        for code in ["ZZ", "XX", "de"] {
            let signed = try payloadWithEntry(node) { $0.replaceSubrange(32..<34, with: Array(code.utf8)) }
            XCTAssertEqual(outcome(signed), .country, code)
        }
        let capacity3 = try payloadWithEntry(node) { $0[34] = 3 }
        XCTAssertEqual(outcome(capacity3), .capacity)
        let capacity2 = try payloadWithEntry(node) { $0[34] = 2 }
        XCTAssertNil(outcome(capacity2))
    }

    func test_oversizedFieldsAndRecords() throws {
        let node = try TestNode()
        var r = try node.record()
        r.operatorLabel = String(repeating: "o", count: 65)
        XCTAssertEqual(outcome(try node.signed(r)), .oversized, "operator 65 bytes")
        r = try node.record()
        r.endpoints = Array(repeating: Endpoint(profile: 0, host: "198.51.100.1", port: 443), count: 17)
        XCTAssertEqual(outcome(try node.signed(r)), .oversized, "17 endpoints")
        r.endpoints = Array(repeating: Endpoint(profile: 0, host: "198.51.100.1", port: 443), count: 16)
        XCTAssertNotEqual(outcome(try node.signed(r)), .oversized, "16 endpoints fit")
        r = try node.record()
        r.endpoints[0].params = String(repeating: "p", count: 20 * 1024)
        let big = try node.signed(r)
        XCTAssertGreaterThan(big.count, RecordValidator.maxSignedRecordBytes)
        XCTAssertEqual(outcome(big), .oversized, "20 KiB record")
        XCTAssertEqual(outcome([UInt8](repeating: 0, count: 16385)), .oversized)
    }

    func test_malformedInput() throws {
        XCTAssertEqual(outcome([]), .malformed)
        XCTAssertEqual(outcome([0xff, 0xff, 0xff]), .malformed)
        let node = try TestNode()
        let signed = try node.signedRecord()
        XCTAssertEqual(outcome(Array(signed.prefix(signed.count - 10))), .malformed)
        XCTAssertEqual(outcome(try node.signPayload([0x0a, 0x01, 0x00])), .malformed)
    }

    func test_timeRules() throws {
        let node = try TestNode()
        let w = Fixtures.window
        XCTAssertNil(outcome(try node.signedRecord(window: w - 7)), "7 windows old is still fresh")
        XCTAssertEqual(outcome(try node.signedRecord(window: w - 8)), .stale)
        XCTAssertNil(outcome(try node.signedRecord(window: w + 1)))
        XCTAssertEqual(outcome(try node.signedRecord(window: w + 2)), .future)
        XCTAssertNil(outcome(try node.signedRecord(now: now + 300, window: w)))
        XCTAssertEqual(outcome(try node.signedRecord(now: now + 301, window: w)), .future)
        XCTAssertEqual(outcome(try node.signedRecord(now: now - 100, expiresIn: 99)), .expired)
        XCTAssertNil(outcome(try node.signedRecord(now: now - 100, expiresIn: 100)))
        // A withdrawal has expires_at == issued_at < now and is still valid while fresh.
        XCTAssertNil(outcome(try node.signedRecord(now: now - 120, withdraw: true)))
        XCTAssertEqual(outcome(try node.signedRecord(now: now - 8 * 60, withdraw: true)), .stale)
        // Far-future clocks never overflow.
        XCTAssertEqual(outcome(try node.signedRecord(now: UInt64.max - 10, window: UInt32.max, expiresIn: 5)), .future)
        XCTAssertEqual(outcome(try node.signedRecord(), now: UInt64.max), .expired)
    }

    func test_addressGroups() {
        XCTAssertEqual(AddressGroup.of(host: "198.51.100.7"), "198.51")
        XCTAssertEqual(AddressGroup.of(host: "2001:db8:1:2::7"), "20010db8")
        XCTAssertEqual(AddressGroup.of(host: "[2001:db8::1]"), "20010db8")
        XCTAssertEqual(AddressGroup.of(host: "::ffff:198.51.100.7"), "198.51")
        XCTAssertEqual(AddressGroup.of(host: "Exit.Example.ORG."), "exit.example.org")
        XCTAssertEqual(AddressGroup.of(host: "198.51.100.07"), "198.51.100.07", "not a strict literal: a name")
        XCTAssertEqual(AddressGroup.of(host: "1.2.3.256"), "1.2.3.256")
    }

    func test_wireErrorNamesItsField() {
        XCTAssertEqual(WireError.invalidField("country_code: ZZ is not assigned").field, "country_code")
        XCTAssertEqual(WireError.invalidValue(field: "capacity_class", value: 3).field, "capacity_class")
        XCTAssertEqual(WireError.tooLong(field: "operator", length: 65, limit: 64).field, "operator")
        XCTAssertEqual(WireError.missingField("entry").field, "entry")
        XCTAssertEqual(WireError.invalidField("expires_at before issued_at").field, "expires_at")
        XCTAssertNil(WireError.truncated.field)
    }
}
