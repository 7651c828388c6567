import Dispatch
import MontanaCrypto
import MontanaDirectory
import NIOCore
import NIOEmbedded
import XCTest
@testable import MontanaNode

/// The bounds of what gossip and directory clients can make a node hold: parked long polls,
/// per-peer exchange budgets, items and bytes in flight per exchange.
final class DirectoryBoundsTests: XCTestCase {
    /// Long polls beyond the table's limit are answered at once instead of parked; a woken or
    /// timed-out poll frees its place.
    func testParkedPollsAreBoundedAndAnsweredOnChange() {
        let loop = EmbeddedEventLoop()
        let waiters = DirectoryWaiters(limit: 4)
        let answered = AnsweredCounter()
        var keys: [AnyObject] = []
        for _ in 0..<4 {
            let k = NSObject()
            keys.append(k)
            XCTAssertTrue(waiters.park(ObjectIdentifier(k), on: loop, seconds: 25) { answered.add() })
        }
        let fifth = NSObject()
        XCTAssertFalse(waiters.park(ObjectIdentifier(fifth), on: loop, seconds: 25) { answered.add() }, "the 5th poll is not parked")
        XCTAssertEqual(waiters.count, 4)
        // A dropped stream gives its place back without an answer.
        waiters.drop(ObjectIdentifier(keys[0]))
        XCTAssertEqual(waiters.count, 3)
        XCTAssertTrue(waiters.park(ObjectIdentifier(fifth), on: loop, seconds: 25) { answered.add() })
        // One times out on its own deadline…
        let sixth = NSObject()
        waiters.drop(ObjectIdentifier(keys[1]))
        XCTAssertTrue(waiters.park(ObjectIdentifier(sixth), on: loop, seconds: 1) { answered.add() })
        loop.advanceTime(by: .seconds(2))
        XCTAssertEqual(answered.value, 1)
        // …the rest are answered when the store changes.
        waiters.wakeAll()
        XCTAssertEqual(answered.value, 4)
        XCTAssertEqual(waiters.count, 0)
        loop.advanceTime(by: .seconds(30))
        XCTAssertEqual(answered.value, 4, "a woken poll's timer does not answer it twice")
    }

    /// A peer gets a burst of 8 exchanges, then one per 5 s; the table holds at most 4096 peers.
    func testInboundExchangesPerPeerAreRateLimited() throws {
        let limiter = InboundExchangeLimiter()
        let peer = try IdentityKey.generate().nodeID
        let t0: UInt64 = 1_000_000_000_000
        for i in 0..<InboundExchangeLimiter.burst { XCTAssertTrue(limiter.allow(peer, now: t0), "exchange \(i + 1) of the burst") }
        XCTAssertFalse(limiter.allow(peer, now: t0), "beyond the burst")
        XCTAssertFalse(limiter.allow(peer, now: t0 + 1_000_000_000), "1 s later: still nothing")
        XCTAssertTrue(limiter.allow(peer, now: t0 + 5_100_000_000), "5 s later: one more")
        XCTAssertFalse(limiter.allow(peer, now: t0 + 5_200_000_000))
        let other = try IdentityKey.generate().nodeID
        XCTAssertTrue(limiter.allow(other, now: t0), "peers have their own budgets")
    }

    /// One exchange carries at most `maxItems` items, and bytes received but not yet applied are
    /// bounded process-wide: past either the caller resets the stream.
    func testExchangeItemsAndBytesInFlightAreBounded() throws {
        let (alliance, _) = try Alliance.create(name: "bounds", open: false)
        let store = try DirectoryStore(path: nil, alliance: alliance)
        let queue = DispatchQueue(label: "test")
        let budget = SharedInFlight(capacity: 1_000_000)
        let batch = SyncBatch(store: store, queue: queue, budget: budget) { _ in }
        let junk = [UInt8](repeating: 7, count: 10_000)
        var accepted = 0
        // Not flushed: hold the queue so nothing is applied (and released) meanwhile.
        let hold = DispatchSemaphore(value: 0)
        queue.async { hold.wait() }
        while batch.add(record: junk) { accepted += 1; if accepted > 1000 { break } }
        XCTAssertEqual(accepted, 100, "1 MB of 10 kB items fits 100, the 101st is refused")
        XCTAssertGreaterThanOrEqual(budget.inUse, 990_000)
        hold.signal()
        batch.discard()
        queue.sync {}
        XCTAssertEqual(budget.inUse, 0, "released once applied or discarded")

        let many = SyncBatch(store: store, queue: queue, budget: SharedInFlight(capacity: Int.max / 2)) { _ in }
        var n = 0
        while many.add(attestation: [1]) { n += 1; if n > SyncBatch.maxItems + 10 { break } }
        XCTAssertEqual(n, SyncBatch.maxItems, "an exchange carries at most maxItems items")
        many.discard()
    }
}

private final class AnsweredCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
