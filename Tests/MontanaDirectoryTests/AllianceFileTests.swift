import Foundation
import MontanaCrypto
@testable import MontanaDirectory
import MontanaWire
import XCTest

final class AllianceFileTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try Fixtures.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func mode(_ path: String) throws -> Int {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber).intValue
    }

    /// The document as a mutable JSON dictionary, for breaking one field at a time.
    private func json(_ doc: AllianceDocument) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(doc.encoded())) as? [String: Any])
    }

    private func decodeError(_ object: [String: Any], file: String = "alliance.json") throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object)
        do {
            _ = try AllianceDocument.decode(Array(data), file: file)
            XCTFail("decoded")
            return ""
        } catch {
            return error.description
        }
    }

    func test_createdAllianceWritesAndLoadsBackWithTheSecretAt0600() throws {
        let (doc, secret) = try Alliance.create(name: "Montana", open: false, serverName: "www.cover.example", cover: "www.cover.example:443")
        XCTAssertEqual(doc.format, "montana-alliance-v1")
        XCTAssertEqual(doc.uuid.count, 32)
        XCTAssertEqual(doc.uuidBytes.count, 16)
        XCTAssertEqual(doc.uuidBytes[6] >> 4, 4, "version 4 UUID")
        XCTAssertEqual(doc.membershipKeyBytes, secret.membershipKey.publicKey)
        XCTAssertEqual(doc.passIssuerKeys, [secret.passIssuerKey.publicKey])
        XCTAssertEqual(doc.universalT1.x25519PublicKeyBytes, secret.universalT1.publicKey)
        XCTAssertEqual(doc.universalT1.shortIDBytes.map(\.count), [8])
        XCTAssertEqual(doc.universalT1.params.serverName, "www.cover.example")

        let docPath = dir + "/alliance.json"
        let secretPath = dir + "/alliance.secret"
        try doc.write(to: docPath)
        try secret.write(to: secretPath, overwrite: false)
        XCTAssertEqual(try mode(secretPath), 0o600)
        XCTAssertEqual(try AllianceDocument.load(path: docPath), doc)
        let loaded = try AllianceSecret.load(path: secretPath)
        XCTAssertEqual(loaded.uuid, doc.uuid)
        XCTAssertEqual(loaded.membershipKey.publicKey, secret.membershipKey.publicKey)
        XCTAssertEqual(loaded.passIssuerKey.publicKey, secret.passIssuerKey.publicKey)
        XCTAssertEqual(loaded.universalT1.privateKey, secret.universalT1.privateKey)
        XCTAssertNoThrow(try loaded.check(matches: doc, file: secretPath))
        XCTAssertFalse("\(loaded)".contains(Hex.encode(secret.membershipKey.seed)), "printing a secret never shows keys")
        XCTAssertFalse(String(reflecting: loaded).contains(Hex.encode(secret.universalT1.privateKey)))
        // The public file never contains private material.
        let text = String(decoding: doc.encoded(), as: UTF8.self)
        XCTAssertFalse(text.contains(Hex.encode(secret.universalT1.privateKey)))
        XCTAssertFalse(text.contains(Hex.encode(secret.membershipKey.seed)))
        // Sorted keys, pretty-printed.
        XCTAssertTrue(text.hasPrefix("{\n"))
        XCTAssertLessThan(try XCTUnwrap(text.range(of: "\"format\"")).lowerBound, try XCTUnwrap(text.range(of: "\"uuid\"")).lowerBound)
    }

    func test_groupReadableSecretIsRefusedNamingTheFile() throws {
        let (_, secret) = Fixtures.closed
        let path = dir + "/alliance.secret"
        try secret.write(to: path, overwrite: false)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        XCTAssertThrowsError(try AllianceSecret.load(path: path)) { error in
            XCTAssertEqual(error as? AllianceFileError, .tooOpen(file: path, mode: 0o644))
            XCTAssertTrue("\(error)".hasPrefix(path + ": "))
        }
    }

    func test_existingSecretIsNotOverwrittenUnlessAsked() throws {
        let (_, secret) = Fixtures.closed
        let path = dir + "/alliance.secret"
        try secret.write(to: path, overwrite: false)
        XCTAssertThrowsError(try secret.write(to: path, overwrite: false))
        XCTAssertNoThrow(try secret.write(to: path, overwrite: true))
        XCTAssertEqual(try mode(path), 0o600)
    }

    func test_secretOfAnotherAllianceDoesNotMatch() throws {
        XCTAssertThrowsError(try Fixtures.other.1.check(matches: Fixtures.closed.0, file: "s")) { error in
            XCTAssertTrue("\(error)".hasPrefix("s: uuid: "), "\(error)")
        }
    }

    func test_secretErrorsNameFileAndKey() throws {
        let path = dir + "/alliance.secret"
        try KeyFile.writeSecret(Array(#"{"format":"montana-alliance-secret-v1","uuid":"00112233445566778899aabbccddeeff","universal_t1_private":"00","membership_seed":"","pass_issuer_seed":""}"#.utf8), to: path)
        XCTAssertThrowsError(try AllianceSecret.load(path: path)) { error in
            XCTAssertEqual("\(error)", "\(path): universal_t1_private: must be 64 hex digits (32 bytes)")
        }
    }

    func test_documentErrorsNameFileKeyAndProblem() throws {
        let base = try json(Fixtures.closed.0)
        var o = base
        o["name"] = nil
        XCTAssertEqual(try decodeError(o), "alliance.json: name: missing")
        o = base
        o["open"] = "yes"
        XCTAssertEqual(try decodeError(o), "alliance.json: open: expected true or false")
        o = base
        o["name"] = String(repeating: "n", count: 65)
        XCTAssertEqual(try decodeError(o), "alliance.json: name: is 65 bytes, must be 1...64")
        o = base
        o["name"] = ""
        XCTAssertEqual(try decodeError(o), "alliance.json: name: is 0 bytes, must be 1...64")
        o = base
        o["format"] = "montana-alliance-v2"
        XCTAssertTrue(try decodeError(o).hasPrefix("alliance.json: format: "))
        o = base
        o["uuid"] = "not-a-uuid"
        XCTAssertTrue(try decodeError(o).hasPrefix("alliance.json: uuid: "))
        o = base
        o["membership_pk"] = "abcd"
        XCTAssertEqual(try decodeError(o), "alliance.json: membership_pk: must be 3904 hex digits (1952 bytes)")
        o = base
        var t1 = try XCTUnwrap(o["universal_t1"] as? [String: Any])
        t1["short_ids"] = ["00112233445566778899"]
        o["universal_t1"] = t1
        XCTAssertEqual(try decodeError(o), "alliance.json: universal_t1.short_ids[0]: must be hex of at most 8 bytes")
        t1["short_ids"] = []
        t1["x25519_pk"] = nil
        o["universal_t1"] = t1
        XCTAssertEqual(try decodeError(o), "alliance.json: universal_t1.x25519_pk: missing")
        o = base
        o["pass_issuers"] = ["zz"]
        XCTAssertEqual(try decodeError(o), "alliance.json: pass_issuers[0]: must be 3904 hex digits (1952 bytes)")
        XCTAssertThrowsError(try AllianceDocument.decode(Array("{not json".utf8), file: "a.json")) { error in
            XCTAssertEqual("\(error)", "a.json: (file): not valid JSON")
        }
        XCTAssertThrowsError(try AllianceDocument.load(path: dir + "/missing.json")) { error in
            XCTAssertTrue("\(error)".hasPrefix(dir + "/missing.json: "))
        }
    }

    func test_passIssuerAndShortIDCountsAreBounded() throws {
        var o = try json(Fixtures.closed.0)
        let issuer = try XCTUnwrap((o["pass_issuers"] as? [String])?.first)
        o["pass_issuers"] = Array(repeating: issuer, count: 16)
        let ok = try JSONSerialization.data(withJSONObject: o)
        XCTAssertEqual(try AllianceDocument.decode(Array(ok), file: "a").passIssuerKeys.count, 16)
        o["pass_issuers"] = Array(repeating: issuer, count: 17)
        XCTAssertEqual(try decodeError(o), "alliance.json: pass_issuers: has 17 keys, limit 16")
        o = try json(Fixtures.closed.0)
        var t1 = try XCTUnwrap(o["universal_t1"] as? [String: Any])
        t1["short_ids"] = Array(repeating: "00", count: 17)
        o["universal_t1"] = t1
        XCTAssertEqual(try decodeError(o), "alliance.json: universal_t1.short_ids: has 17 entries, limit 16")
    }

    func test_oversizedFileIsRefusedBeforeParsing() throws {
        let path = dir + "/big.json"
        try Data(repeating: 0x20, count: AllianceJSON.maxFileBytes + 1).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try AllianceDocument.load(path: path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path): (file): is 262145 bytes"), "\(error)")
        }
    }

    func test_nonRegularFilesAreRefused() throws {
        XCTAssertThrowsError(try AllianceDocument.load(path: "/dev/zero")) { error in
            XCTAssertEqual("\(error)", "/dev/zero: not a regular file")
        }
        XCTAssertThrowsError(try AllianceDocument.load(path: dir)) { error in
            XCTAssertEqual("\(error)", "\(dir): not a regular file")
        }
    }

    func test_dashedUpperCaseUUIDIsAcceptedAndWrittenUndashedLowercase() throws {
        var o = try json(Fixtures.closed.0)
        o["uuid"] = "0011AABB-CCDD-4EFF-8899-AABBCCDDEEFF"
        let doc = try AllianceDocument.decode(Array(try JSONSerialization.data(withJSONObject: o)), file: "a")
        XCTAssertEqual(doc.uuid, "0011aabbccdd4eff8899aabbccddeeff")
        XCTAssertTrue(String(decoding: doc.encoded(), as: UTF8.self).contains("\"uuid\" : \"0011aabbccdd4eff8899aabbccddeeff\""))
        o["uuid"] = "0011AABBC-CDD-4EFF-8899-AABBCCDDEEFF"
        XCTAssertTrue(try decodeError(o).hasPrefix("alliance.json: uuid: "))
    }
}
