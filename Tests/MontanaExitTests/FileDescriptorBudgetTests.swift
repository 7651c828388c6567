import XCTest
@testable import MontanaExit
#if canImport(Glibc)
import Glibc
#endif

final class FileDescriptorBudgetTests: XCTestCase {
    /// Pipes opened to move the count: 32 (64 descriptors) is far above any background noise
    /// yet cheap.
    private let pipesOpened = 32
    /// XCTest and NIO threads of earlier tests may open or close a descriptor while we count;
    /// 2 of slack keeps the test honest (it still fails if counting were off by a pipe's worth).
    private let countSlack = 2
    /// Head-room the lowered soft limit leaves above what is open, for the exhaustion test.
    private let headRoom = 24

    private func setSoftLimit(_ value: Int) -> Bool {
        var limits = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return false }
        limits.rlim_cur = rlim_t(value)
        return setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits) == 0
    }

    func test_softLimitIsRaisedToTheHardLimit() throws {
        var limits = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits), 0)
        let original = Int(clamping: limits.rlim_cur)
        let hard = limits.rlim_max == rlim_t.max ? Int.max : Int(clamping: limits.rlim_max)
        // Start below the hard limit so the call has something to do.
        let lowered = min(original, 512)
        XCTAssertTrue(setSoftLimit(lowered))
        defer { _ = setSoftLimit(original) }

        let raise = FileDescriptorBudget.raiseSoftLimitToHard()
        XCTAssertNil(raise.failure)
        XCTAssertEqual(raise.before, lowered)
        XCTAssertEqual(raise.hard, hard)
        XCTAssertEqual(raise.after, hard)
        XCTAssertEqual(FileDescriptorBudget.softLimit(), hard)
        XCTAssertEqual(FileDescriptorBudget.current().limit, hard)
        // A second call finds nothing to raise.
        XCTAssertEqual(FileDescriptorBudget.raiseSoftLimitToHard().before, hard)
    }

    func test_inUseCountFollowsRealOpensAndCloses() throws {
        let before = try XCTUnwrap(FileDescriptorBudget.countOpenDescriptors())
        var fds: [Int32] = []
        for _ in 0..<pipesOpened {
            var pair: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&pair), 0)
            fds += pair
        }
        let during = FileDescriptorBudget.current()
        XCTAssertTrue(during.countIsExact)
        XCTAssertEqual(Double(during.inUse), Double(before + 2 * pipesOpened), accuracy: Double(countSlack))
        for fd in fds { close(fd) }
        let after = try XCTUnwrap(FileDescriptorBudget.countOpenDescriptors())
        XCTAssertEqual(Double(after), Double(before), accuracy: Double(countSlack))
    }

    func test_availableMatchesWhatTheKernelStillLetsUsOpen() throws {
        let original = FileDescriptorBudget.softLimit()
        let open = try XCTUnwrap(FileDescriptorBudget.countOpenDescriptors())
        // The lowest free numbers must all be below the new limit for the arithmetic to hold:
        // the highest open descriptor has to be below it too.
        XCTAssertTrue(setSoftLimit(open + headRoom + 64))
        defer { _ = setSoftLimit(original) }
        let budget = FileDescriptorBudget.current()
        XCTAssertTrue(budget.hasRoom(reserve: 0))
        XCTAssertFalse(budget.hasRoom(reserve: budget.available))

        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        while true {
            let fd = dup(0)
            if fd < 0 { break }
            opened.append(fd)
            guard opened.count <= budget.available + countSlack else { break }
        }
        XCTAssertEqual(errno, EMFILE)
        XCTAssertEqual(Double(opened.count), Double(budget.available), accuracy: Double(countSlack))
        let exhausted = FileDescriptorBudget.current()
        XCTAssertEqual(exhausted.available, 0)
        XCTAssertFalse(exhausted.hasRoom(reserve: 0))
    }

    func test_hasRoomKeepsTheReserveFree() {
        let budget = FileDescriptorBudget(limit: 1024, inUse: 1000)
        XCTAssertEqual(budget.available, 24)
        XCTAssertTrue(budget.hasRoom(reserve: 23))
        XCTAssertFalse(budget.hasRoom(reserve: 24))
        XCTAssertTrue(budget.hasRoom(reserve: -5), "a negative reserve counts as 0")
        XCTAssertEqual(FileDescriptorBudget(limit: 10, inUse: 50).available, 0, "never negative")
    }
}
