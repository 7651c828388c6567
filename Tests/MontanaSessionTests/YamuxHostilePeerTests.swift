import MontanaSession
import NIOCore
import XCTest

/// Bounds that hold against a peer who wants to make us spend memory or answers.
final class YamuxHostilePeerTests: XCTestCase {
    final class CountingBudget: YamuxWindowBudget, @unchecked Sendable {
        var capacity: UInt64
        var used: UInt64 = 0
        init(capacity: UInt64) { self.capacity = capacity }
        func reserve(_ bytes: UInt64) -> Bool {
            guard used + bytes <= capacity else { return false }
            used += bytes
            return true
        }
        func release(_ bytes: UInt64) { used -= bytes }
    }

    /// The client writes 128 KiB at a time and the server consumes it 1 ms later: a consumer fast
    /// enough that auto-tuning would grow the window every round.
    private func consumeFast(_ pair: inout YamuxPair, on id: YamuxStreamID, writes: Int) throws {
        for _ in 0..<writes {
            try pair.client.write(ByteBuffer(repeating: 2, count: 128 * 1024), to: id)
            try pair.pump()
            let arrived = pair.serverEvents.dataByteCount(on: id)
            pair.serverEvents.removeAll()
            pair.now += 1_000_000
            pair.server.consumed(arrived, on: id, now: pair.now)
            try pair.pump()
        }
    }

    func test_pingFloodBeyondTheBurstFailsTheSession() throws {
        var server = YamuxConnection(role: .server)
        var flood = ByteBuffer()
        for i in 0..<100 { flood.writeImmutableBuffer(header(.ping, [.syn], 0, UInt32(i))) }
        XCTAssertThrowsError(try server.receive(flood, now: 1_000_000_000)) { error in
            XCTAssertEqual(error as? YamuxError, .pingFlood)
        }
        XCTAssertTrue(server.isFailed)
    }

    func test_pingsAtAKeepaliveRateAreAnsweredForever() throws {
        var server = YamuxConnection(role: .server)
        var now: UInt64 = 1_000_000_000
        for i in 0..<500 {
            _ = try server.receive(header(.ping, [.syn], 0, UInt32(i)), now: now)
            XCTAssertNotNil(server.takeOutbound(), "ping \(i) answered")
            now += 1_000_000_000  // one a second: well under the refill rate
        }
    }

    func test_refusedStreamFloodFailsTheSession() throws {
        var config = YamuxConfiguration()
        config.maxInboundStreams = 0
        var server = YamuxConnection(role: .server, configuration: config)
        var flood = ByteBuffer()
        for i in 0..<2000 { flood.writeImmutableBuffer(header(.windowUpdate, [.syn], UInt32(2 * i + 1), 0)) }
        XCTAssertThrowsError(try server.receive(flood, now: 1_000_000_000)) { error in
            XCTAssertEqual(error as? YamuxError, .refusedStreamFlood)
        }
    }

    func test_sessionBacklogIsBoundedAcrossStreams() throws {
        var config = YamuxConfiguration()
        config.maxPendingOutboundBytesPerSession = 1024 * 1024
        var pair = YamuxPair(server: config)
        // The client opens 16 streams and never grants window; the server writes to all of them.
        var ids: [YamuxStreamID] = []
        for _ in 0..<16 { ids.append(try pair.client.openStream()) }
        try pair.pump()
        var refused = 0
        for id in ids {
            // The first 256 KiB go out on the initial window; the next 256 KiB wait.
            for _ in 0..<8 {
                do {
                    try pair.server.write(ByteBuffer(repeating: 1, count: 64 * 1024), to: id)
                } catch YamuxError.streamNotWritable {
                    refused += 1
                }
            }
            _ = pair.server.takeOutbound()
        }
        XCTAssertLessThanOrEqual(pair.server.pendingOutboundBytes, 1024 * 1024 + 64 * 1024)
        XCTAssertGreaterThan(refused, 0, "streams stop being writable once the session backlog is full")
        XCTAssertFalse(pair.server.isWritable(ids[15]))
    }

    func test_windowsStopGrowingWhenTheSharedBudgetIsSpent() throws {
        let budget = CountingBudget(capacity: 256 * 1024)
        var config = YamuxConfiguration()
        config.sharedWindowBudget = budget
        var pair = YamuxPair(server: config)
        let id = try pair.client.openStream()
        try pair.pump()
        // A fast consumer: would double its window up to 16 MiB.
        try consumeFast(&pair, on: id, writes: 64)
        XCTAssertEqual(pair.server.receiveWindowSize(of: id), 512 * 1024, "one doubling fits the budget, the next does not")
        XCTAssertEqual(budget.used, 256 * 1024)
        pair.server.reset(id)
        XCTAssertEqual(budget.used, 0, "a closed stream gives its growth back")
    }

    func test_sessionGrowthBudgetCapsWindowsWithoutASharedBudget() throws {
        var config = YamuxConfiguration()
        config.maxReceiveWindowGrowthPerSession = 768 * 1024
        var pair = YamuxPair(server: config)
        let id = try pair.client.openStream()
        try pair.pump()
        try consumeFast(&pair, on: id, writes: 128)
        // 256 KiB → 512 KiB (+256) → 1 MiB (+512): 768 KiB of growth, then no more.
        XCTAssertEqual(pair.server.receiveWindowSize(of: id), 1024 * 1024)
        XCTAssertEqual(pair.server.receiveWindowGrowth, 768 * 1024)
    }
}
