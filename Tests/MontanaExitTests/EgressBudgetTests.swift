import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
@testable import MontanaExit

final class EgressBudgetTests: XCTestCase {
    private let account: [UInt8] = Array(repeating: 0xA1, count: 32)
    private let other: [UInt8] = Array(repeating: 0xB2, count: 32)

    func test_sessionsBeyondTheAccountCapAreRefusedUntilOneCloses() {
        let budget = AccountBudget(sessionsPerAccount: 8, streamsPerAccount: 1024)
        for i in 0..<8 { XCTAssertTrue(budget.openSession(account), "session \(i + 1) of 8") }
        XCTAssertFalse(budget.openSession(account), "the 9th session of one account is over the cap")
        XCTAssertTrue(budget.openSession(other), "another account is not affected")
        budget.closeSession(account)
        XCTAssertTrue(budget.openSession(account), "a closed session gives its slot back")
        XCTAssertEqual(budget.usage(account).sessions, 8)
    }

    func test_streamsAreCountedAcrossSessionsOfOneAccount() {
        let budget = AccountBudget(sessionsPerAccount: 8, streamsPerAccount: 3)
        XCTAssertTrue(budget.openSession(account))
        XCTAssertTrue(budget.openSession(account))
        // Streams from either session count against the same account total.
        XCTAssertTrue(budget.openStream(account))
        XCTAssertTrue(budget.openStream(account))
        XCTAssertTrue(budget.openStream(account))
        XCTAssertFalse(budget.openStream(account))
        budget.closeStream(account)
        XCTAssertTrue(budget.openStream(account))
    }

    func test_idleAccountsLeaveNoEntry() {
        let budget = AccountBudget(sessionsPerAccount: 2, streamsPerAccount: 2)
        XCTAssertTrue(budget.openSession(account))
        XCTAssertTrue(budget.openStream(account))
        budget.closeStream(account)
        budget.closeSession(account)
        budget.closeSession(account) // an extra close never goes negative
        XCTAssertEqual(budget.accounts, 0)
        XCTAssertEqual(budget.usage(account).sessions, 0)
    }

    func test_concurrentOpensNeverExceedTheCap() {
        let cap = 100
        let budget = AccountBudget(sessionsPerAccount: cap, streamsPerAccount: cap)
        let granted = NIOLockedValueBox((sessions: 0, streams: 0))
        let account = self.account
        // 10,000 attempts from many threads at once: exactly `cap` of each kind may succeed.
        DispatchQueue.concurrentPerform(iterations: 10_000) { i in
            let ok = i % 2 == 0 ? budget.openSession(account) : budget.openStream(account)
            if ok {
                granted.withLockedValue { if i % 2 == 0 { $0.sessions += 1 } else { $0.streams += 1 } }
            }
        }
        XCTAssertEqual(granted.withLockedValue { $0.sessions }, cap)
        XCTAssertEqual(granted.withLockedValue { $0.streams }, cap)
    }

    /// A free loopback port with nothing listening (bound, read back, released).
    private func closedPort() throws -> Int {
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress?.port ?? 0
        try channel.close().wait()
        return port
    }

    private var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        super.setUp()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? group.syncShutdownGracefully()
        super.tearDown()
    }

    func test_happyEyeballsDialsAtMostTheCappedNumberOfAddresses() throws {
        // Four refusing addresses, then one that listens: only a connector that dials a fifth
        // address gets through.
        let listener = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? listener.close().wait() }
        let refusing = try (0..<4).map { _ in try SocketAddress(ipAddress: "127.0.0.1", port: try closedPort()) }
        let addresses = refusing + [try XCTUnwrap(listener.localAddress)]
        let loop = group.next()
        // The connector runs on the event loop, as in the exit.
        let capped = loop.flatSubmit {
            HappyEyeballsConnector.connect(addresses: addresses, maxAttempts: 4, on: loop, timeout: .seconds(2)) { _ in
                loop.makeSucceededVoidFuture()
            }
        }
        XCTAssertThrowsError(try capped.wait(), "with a cap of 4 the fifth address is never dialled")
        let uncapped = loop.flatSubmit {
            HappyEyeballsConnector.connect(addresses: addresses, maxAttempts: 5, on: loop, timeout: .seconds(2)) { _ in
                loop.makeSucceededVoidFuture()
            }
        }
        let channel = try uncapped.wait()
        XCTAssertEqual(channel.remoteAddress?.port, listener.localAddress?.port)
        try channel.close().wait()
    }
}
