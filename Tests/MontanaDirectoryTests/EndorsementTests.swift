import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class EndorsementTests: XCTestCase {
    func test_endorsementSignsAndVerifiesUnderTheMembershipKeyOnly() throws {
        let (doc, secret) = Fixtures.closed
        let node = try IdentityKey.generate().nodeID
        let e = Endorsement(alliance: doc.uuidBytes, nodeID: node.bytes, operatorLabel: "ops-a", issuedAt: Fixtures.now)
        let signed = try EndorsementSigner.sign(e, with: secret.membershipKey).encode()
        XCTAssertEqual(try EndorsementSigner.verify(signed, membershipPublicKey: doc.membershipKeyBytes), e)
        XCTAssertThrowsError(try EndorsementSigner.verify(signed, membershipPublicKey: Fixtures.other.0.membershipKeyBytes)) {
            XCTAssertEqual($0 as? SignedObjectError, .badSignature)
        }
        // Another label's signature by the same key does not pass as an endorsement.
        let asRecord = try SignedObject.sign(e.encode(), label: SignedObject.recordLabel, with: secret.membershipKey).encode()
        XCTAssertThrowsError(try EndorsementSigner.verify(asRecord, membershipPublicKey: doc.membershipKeyBytes))
        XCTAssertThrowsError(try EndorsementSigner.verify([1, 2, 3], membershipPublicKey: doc.membershipKeyBytes)) {
            guard case .malformed = $0 as? SignedObjectError else { return XCTFail("\($0)") }
        }
    }

    func test_emptyOperatorIsOmittedOnTheWireAndDecodesAsEmpty() throws {
        let e = Endorsement(alliance: [UInt8](repeating: 1, count: 16), nodeID: [UInt8](repeating: 2, count: 32), issuedAt: 5)
        let bytes = e.encode()
        XCTAssertEqual(bytes.count, 2 + 16 + 2 + 32 + 2)
        XCTAssertEqual(try Endorsement.decode(bytes).operatorLabel, "")
        XCTAssertEqual(try Endorsement.decode(bytes), e)
    }

    func test_endorsementDecoderEnforcesItsBounds() throws {
        var e = Endorsement(alliance: [UInt8](repeating: 1, count: 16), nodeID: [UInt8](repeating: 2, count: 32),
                            operatorLabel: String(repeating: "o", count: 64), issuedAt: 5)
        XCTAssertNoThrow(try Endorsement.decode(e.encode()))
        e.operatorLabel += "o"
        XCTAssertEqual(try? Endorsement.decode(e.encode()), nil)
        XCTAssertThrowsError(try Endorsement.decode(e.encode())) {
            XCTAssertEqual($0 as? WireError, .tooLong(field: "endorsement.operator", length: 65, limit: 64))
        }
        e.operatorLabel = ""
        e.alliance = [UInt8](repeating: 1, count: 15)
        XCTAssertThrowsError(try Endorsement.decode(e.encode()))
        e.alliance = [UInt8](repeating: 1, count: 16)
        e.nodeID = [UInt8](repeating: 2, count: 33)
        XCTAssertThrowsError(try Endorsement.decode(e.encode()))
        var w = ProtoWriter()
        w.lengthDelimited(1, [UInt8](repeating: 1, count: 16))
        w.lengthDelimited(2, [UInt8](repeating: 2, count: 32))
        XCTAssertThrowsError(try Endorsement.decode(w.bytes)) { XCTAssertEqual($0 as? WireError, .missingField("endorsement.issued_at")) }
    }

    func test_recordWithoutEndorsementEncodesAsBeforeAndField12RoundTrips() throws {
        let node = try TestNode()
        var r = try node.record(endorsedBy: .none)
        let plain = r.encode()
        // Field 11 absent too here: the last field is key_mode (8) = 0.
        XCTAssertEqual(Array(plain.suffix(2)), [0x40, 0x00])
        XCTAssertNil(try DirectoryRecord.decode(plain).endorsement)
        r.endorsement = [9, 9, 9]
        let with = r.encode()
        XCTAssertEqual(Array(with.prefix(plain.count)), plain)
        XCTAssertEqual(Array(with.suffix(5)), [0x62, 0x03, 9, 9, 9])
        XCTAssertEqual(try DirectoryRecord.decode(with), r)
        r.endorsement = [UInt8](repeating: 0, count: DirectoryRecord.maxEndorsement)
        XCTAssertNoThrow(try DirectoryRecord.decode(r.encode()))
        r.endorsement = [UInt8](repeating: 0, count: DirectoryRecord.maxEndorsement + 1)
        XCTAssertThrowsError(try DirectoryRecord.decode(r.encode())) {
            XCTAssertEqual($0 as? WireError, .tooLong(field: "endorsement", length: 8193, limit: 8192))
        }
    }

    func test_endorsementFileRoundTripsAndVerifies() throws {
        let (doc, secret) = Fixtures.closed
        let node = try IdentityKey.generate().nodeID
        let file = try EndorsementFile.make(endorsing: node, operator: "ops-a", alliance: doc, secret: secret, now: Fixtures.now)
        XCTAssertEqual(file.format, "montana-endorsement-v1")
        XCTAssertEqual(file.nodeID, node.hex)
        XCTAssertEqual(file.alliance, doc.uuid)
        let dir = try Fixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/node.endorsement"
        try file.write(to: path)
        let loaded = try EndorsementFile.load(path: path)
        XCTAssertEqual(loaded, file)
        let e = try loaded.verify(alliance: doc)
        XCTAssertEqual(e.nodeID, node.bytes)
        XCTAssertEqual(e.operatorLabel, "ops-a")
        XCTAssertEqual(e.issuedAt, Fixtures.now)
        XCTAssertEqual(try EndorsementSigner.verify(loaded.signedBytes, membershipPublicKey: doc.membershipKeyBytes), e)
        XCTAssertThrowsError(try loaded.verify(alliance: Fixtures.other.0, file: path)) {
            XCTAssertTrue("\($0)".hasPrefix("\(path): signed: "), "\($0)")
        }
    }

    func test_endorsementFileWhoseFieldsDisagreeWithTheSignatureIsRefused() throws {
        let (doc, secret) = Fixtures.closed
        var file = try EndorsementFile.make(endorsing: try IdentityKey.generate().nodeID, operator: "ops-a",
                                            alliance: doc, secret: secret, now: Fixtures.now)
        file.operatorLabel = "ops-b"
        XCTAssertThrowsError(try EndorsementFile.decode(file.encoded(), file: "e.json")) {
            XCTAssertEqual("\($0)", "e.json: operator: differs from the signed endorsement")
        }
        file.operatorLabel = "ops-a"
        file.signed = "00"
        XCTAssertThrowsError(try EndorsementFile.decode(file.encoded(), file: "e.json")) {
            XCTAssertTrue("\($0)".hasPrefix("e.json: signed: "), "\($0)")
        }
    }

    func test_makeRefusesAForeignSecretAndALongOperator() throws {
        let node = try IdentityKey.generate().nodeID
        XCTAssertThrowsError(try EndorsementFile.make(endorsing: node, operator: "", alliance: Fixtures.closed.0,
                                                      secret: Fixtures.other.1, now: Fixtures.now))
        XCTAssertNoThrow(try EndorsementFile.make(endorsing: node, operator: String(repeating: "x", count: 64),
                                                  alliance: Fixtures.closed.0, secret: Fixtures.closed.1, now: Fixtures.now))
        XCTAssertThrowsError(try EndorsementFile.make(endorsing: node, operator: String(repeating: "x", count: 65),
                                                      alliance: Fixtures.closed.0, secret: Fixtures.closed.1, now: Fixtures.now))
    }
}
