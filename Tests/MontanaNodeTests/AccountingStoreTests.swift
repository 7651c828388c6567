import Foundation
import MontanaNode
import XCTest

final class AccountingStoreTests: XCTestCase {
    func test_totalsAccumulateAndSurviveReopening() throws {
        let dir = NSTemporaryDirectory() + "montana-state-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.sqlite"
        let alice = [UInt8](repeating: 1, count: 32), bob = [UInt8](repeating: 2, count: 32)
        do {
            let store = try AccountingStore(path: path)
            try store.add([alice: .init(bytesUp: 10, bytesDown: 100, streams: 1), bob: .init(refusals: 1)])
            try store.add([alice: .init(bytesUp: 5, bytesDown: 50, streams: 2)])
        }
        let reopened = try AccountingStore(path: path)
        XCTAssertEqual(try reopened.totals(account: alice), .init(bytesUp: 15, bytesDown: 150, streams: 3))
        XCTAssertEqual(try reopened.totals(account: bob), .init(refusals: 1))
        let summary = try reopened.summary()
        XCTAssertEqual(summary.accounts, 2)
        XCTAssertEqual(summary.totals, .init(bytesUp: 15, bytesDown: 150, streams: 3, refusals: 1))
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber).intValue
        XCTAssertEqual(mode, 0o600, "account ids are personal data: the file is private")
    }
}
