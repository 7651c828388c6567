import Foundation
import MontanaCrypto
import XCTest

final class KeyFileTests: XCTestCase {
    var dir: String = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "montana-keys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func test_secretKeyFilesAreWrittenWithMode0600AndLoadBack() throws {
        let key = try IdentityKey.generate()
        let path = dir + "/identity.key"
        try KeyFile(kind: .nodeIdentity, seed: key.seed).write(to: path)
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber).intValue
        XCTAssertEqual(mode, 0o600)
        XCTAssertEqual(try KeyFile.loadIdentity(path).publicKey, key.publicKey)
    }

    func test_groupReadableKeyIsRefusedWithAnErrorNamingTheFile() throws {
        let path = dir + "/kem.key"
        try KeyFile(kind: .nodeKEM, seed: SecureRandom.bytes(32)).write(to: path)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        XCTAssertThrowsError(try KeyFile.loadKEM(path)) { error in
            XCTAssertEqual(error as? KeyFileError, .tooOpen(path, mode: 0o640))
            XCTAssertTrue("\(error)".contains(path))
        }
    }

    func test_existingKeyIsNeverOverwrittenWithoutForce() throws {
        let path = dir + "/account.key"
        try KeyFile(kind: .account, seed: SecureRandom.bytes(32)).write(to: path)
        XCTAssertThrowsError(try KeyFile(kind: .account, seed: SecureRandom.bytes(32)).write(to: path)) { XCTAssertEqual($0 as? KeyFileError, .exists(path)) }
        XCTAssertNoThrow(try KeyFile(kind: .account, seed: SecureRandom.bytes(32)).write(to: path, overwrite: true))
    }

    func test_wrongKindAndGarbageAreNamedErrors() throws {
        let path = dir + "/t1.key"
        try KeyFile(kind: .t1, seed: SecureRandom.bytes(32)).write(to: path)
        XCTAssertThrowsError(try KeyFile.loadIdentity(path)) { XCTAssertEqual($0 as? KeyFileError, .wrongKind(path, expected: .nodeIdentity, found: .t1)) }
        let garbage = dir + "/garbage.key"
        try KeyFile.writeSecret(Array("not json".utf8), to: garbage)
        XCTAssertThrowsError(try KeyFile.load(garbage)) { guard case KeyFileError.malformed(garbage, _) = $0 else { return XCTFail("\($0)") } }
    }

    func test_idsFollowTheSpecDerivations() throws {
        let key = try IdentityKey(seed: [UInt8](repeating: 0x77, count: 32))
        XCTAssertEqual(key.nodeID.bytes, Digests.sha256(Array("mt-node".utf8) + key.publicKey))
        XCTAssertEqual(key.accountID, Digests.sha256(Array("mt-account".utf8) + [1, 0] + key.publicKey))
        XCTAssertEqual(key.nodeID.multihash.prefix(2), [0x12, 0x20])
        XCTAssertEqual(AnonymousPeerID.random().prefix(2), [0x00, 0x10])
        XCTAssertEqual(TimeWindow.window(unixSeconds: 119), 1)
        XCTAssertEqual(TimeWindow.slot(unixSeconds: 240), 2)
    }
}
