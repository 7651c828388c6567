import Foundation
import MontanaConformance
import XCTest

/// `independent-v1.json` was produced by an independent (Python) implementation of PROTOCOL.md.
/// Every vector in it must agree with our code.
final class IndependentVectorTests: XCTestCase {
    static func results() throws -> [VectorChecker.Result] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "independent-v1", withExtension: "json", subdirectory: "Resources"))
        var checker = try VectorChecker(json: Data(contentsOf: url))
        return checker.checkAll()
    }

    func assertSection(_ prefix: String, minimum: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let results = try Self.results().filter { $0.name.hasPrefix(prefix) }
        XCTAssertGreaterThanOrEqual(results.count, minimum, "too few checks for \(prefix)", file: file, line: line)
        for r in results where !r.passed {
            XCTFail("\(r.name): \(r.detail)", file: file, line: line)
        }
    }

    func test_xwingAndMLDSAKnownAnswersMatch() throws { try assertSection("xwing_kat", minimum: 3) }
    func test_nodeAndAccountIdsAndTimeWindowsMatch() throws { try assertSection("ids.", minimum: 9) }
    func test_hopPrefaceOpensToTheRecordedMessageAndAnswer() throws { try assertSection("preface_open.", minimum: 7) }
    func test_stopPrefaceOpensToTheRecordedMessageAndAnswer() throws { try assertSection("preface_open_stop.", minimum: 6) }
    func test_everyNegativePrefaceIsRejected() throws { try assertSection("preface_negative", minimum: 8) }
    func test_noiseTranscriptReplaysByteForByteWithIdenticalKeys() throws { try assertSection("noise.", minimum: 20) }
    func test_transportFramesSealAndOpenIdentically() throws { try assertSection("transport_frames", minimum: 8) }
    func test_egressMessagesValidRoundTripAndInvalidAreRejected() throws { try assertSection("egress ", minimum: 20) }
    func test_egressStreamOpenMessagesDecode() throws { try assertSection("egress_stream_open", minimum: 2) }

    func test_everyCheckInTheFilePasses() throws {
        let results = try Self.results()
        XCTAssertGreaterThan(results.count, 60)
        XCTAssertEqual(results.filter { !$0.passed }.map { "\($0.name): \($0.detail)" }, [])
    }
}
