import XCTest
@testable import MontanaClient

final class ExitSelectionTests: XCTestCase {
    func test_automaticCountryAndNodeSelections() throws {
        XCTAssertEqual(try ExitSelection.parse(username: ""), .automatic)
        XCTAssertEqual(try ExitSelection.parse(username: "AUTO"), .automatic)
        XCTAssertEqual(try ExitSelection.parse(username: "country-de"), .country("DE"))
        XCTAssertEqual(try ExitSelection.parse(username: "Country-Jp"), .country("JP"))
        XCTAssertEqual(try ExitSelection.parse(username: "node-0123ABCD"), .node(prefixHex: "0123abcd"))
        let full = String(repeating: "ab", count: 32)
        XCTAssertEqual(try ExitSelection.parse(username: "node-" + full), .node(prefixHex: full))
    }

    func test_anythingElseIsATypedError() {
        func error(_ username: String) -> ExitSelectionError? {
            do { _ = try ExitSelection.parse(username: username); return nil } catch { return error }
        }
        XCTAssertEqual(error("country-zz"), .unknownCountry(username: "country-zz"))
        XCTAssertEqual(error("country-deu"), .unknownCountry(username: "country-deu"))
        XCTAssertEqual(error("country-"), .unknownCountry(username: "country-"))
        XCTAssertEqual(error("node-0123abc"), .invalidNodePrefix(username: "node-0123abc"))
        XCTAssertEqual(error("node-0123abcg"), .invalidNodePrefix(username: "node-0123abcg"))
        XCTAssertEqual(error("node-" + String(repeating: "a", count: 65)), .invalidNodePrefix(username: "node-" + String(repeating: "a", count: 65)))
        XCTAssertEqual(error("germany"), .unrecognized(username: "germany"))
        XCTAssertEqual(error(" auto"), .unrecognized(username: " auto"))
        XCTAssertEqual(error("germany")?.description,
                       "proxy username \"germany\" is not an exit selection: use auto, country-XX or node-<hex node id prefix>")
    }
}
