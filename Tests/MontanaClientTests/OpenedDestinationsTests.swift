@testable import MontanaClient
import MontanaCrypto
import MontanaWire
import XCTest

/// The memory behind `optimistic_connect = "known"`: bounded, expiring, forgetting refusals.
final class OpenedDestinationsTests: XCTestCase {
    private let exit = try! NodeID(bytes: [UInt8](repeating: 7, count: 32))
    private let second: UInt64 = 1_000_000_000

    private func key(_ n: Int) -> OpenedDestinations.Key {
        .init(exit: exit, address: .host("host\(n).example"), port: 443)
    }

    func testRemembersForTenMinutesThenForgets() {
        var memory = OpenedDestinations()
        memory.remember(key(1), now: 100 * second)
        XCTAssertTrue(memory.contains(key(1), now: 101 * second))
        XCTAssertFalse(memory.contains(key(2), now: 101 * second))
        XCTAssertTrue(memory.contains(key(1), now: 699 * second))
        XCTAssertFalse(memory.contains(key(1), now: 700 * second), "expired after 600 s")
        XCTAssertFalse(memory.contains(key(1), now: 50 * second), "a clock before the entry never matches")
        memory.remember(key(3), now: 100 * second)
        memory.forget(key(3))
        XCTAssertFalse(memory.contains(key(3), now: 100 * second), "a refusal forgets the destination")
    }

    func testPastTheBoundTheOldestIsForgotten() {
        var memory = OpenedDestinations()
        let total = OpenedDestinations.capacity + 200
        for n in 0..<total { memory.remember(key(n), now: UInt64(n + 1) * second / 100) }
        XCTAssertEqual(memory.count, OpenedDestinations.capacity, "never more than 1,024 destinations")
        let now = UInt64(total + 1) * second / 100
        XCTAssertFalse(memory.contains(key(0), now: now), "the oldest went first")
        XCTAssertFalse(memory.contains(key(199), now: now))
        XCTAssertTrue(memory.contains(key(200), now: now))
        XCTAssertTrue(memory.contains(key(total - 1), now: now))
    }
}
