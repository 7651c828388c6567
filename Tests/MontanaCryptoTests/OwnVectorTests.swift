import Foundation
import MontanaConformance
import XCTest

/// The committed docs/vectors/montana-v1.json must keep verifying: everything deterministic is
/// re-derived from its seeds, recorded ciphertexts are decapsulated and signatures verified.
final class OwnVectorTests: XCTestCase {
    func test_committedVectorsVerify() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var checker = try VectorChecker(path: root.appendingPathComponent("docs/vectors/montana-v1.json").path)
        let results = checker.checkAll()
        XCTAssertGreaterThan(results.count, 90)
        XCTAssertEqual(checker.failures.map { "\($0.name): \($0.detail)" }, [])
    }

    func test_freshlyGeneratedVectorsVerify() throws {
        let data = try JSONSerialization.data(withJSONObject: try VectorGenerator.generate())
        var checker = try VectorChecker(json: data)
        _ = checker.checkAll()
        XCTAssertEqual(checker.failures.map { "\($0.name): \($0.detail)" }, [])
    }
}
