import MontanaNode
import XCTest

final class LimiterTests: XCTestCase {
    func test_circuitsPerSourceAndInTotalAreCapped() {
        let limiter = CircuitLimiter(perSource: 2, total: 3)
        XCTAssertTrue(limiter.acquire(source: "192.0.2.1"))
        XCTAssertTrue(limiter.acquire(source: "192.0.2.1"))
        XCTAssertFalse(limiter.acquire(source: "192.0.2.1"), "third circuit from one source")
        XCTAssertTrue(limiter.acquire(source: "192.0.2.2"))
        XCTAssertFalse(limiter.acquire(source: "192.0.2.3"), "over the total")
        limiter.release(source: "192.0.2.1")
        XCTAssertTrue(limiter.acquire(source: "192.0.2.3"))
        XCTAssertEqual(limiter.active, 3)
    }

    func test_membersAreExemptFromThePerSourceCapButNotFromTheTotal() {
        let limiter = CircuitLimiter(perSource: 1, total: 3, exempt: ["198.51.100.7"])
        XCTAssertTrue(limiter.acquire(source: "198.51.100.7"))
        XCTAssertTrue(limiter.acquire(source: "198.51.100.7"))
        XCTAssertTrue(limiter.acquire(source: "198.51.100.7"))
        XCTAssertFalse(limiter.acquire(source: "198.51.100.7"))
    }

    func test_handshakeBucketRefusesBurstsBeyondItsRate() {
        let limiter = HandshakeRateLimiter(perSecond: 5)
        let granted = (0..<20).filter { _ in limiter.tryAcquire() }.count
        XCTAssertEqual(granted, 5)
    }
}
