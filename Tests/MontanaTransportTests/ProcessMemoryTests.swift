import MontanaTransport
import XCTest

final class ProcessMemoryTests: XCTestCase {
    func test_heapCountsWhatIsAllocated() throws {
        guard let before = ProcessMemory.heap() else {
            throw XCTSkip("LOUD SKIP: this libc has no mallinfo2 (not glibc ≥ 2.33); /status memory stays empty here")
        }
        let size = 32 * 1_048_576
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        block.initializeMemory(as: UInt8.self, repeating: 1, count: size)
        let during = try XCTUnwrap(ProcessMemory.heap())
        block.deallocate()
        let after = try XCTUnwrap(ProcessMemory.heap())
        XCTAssertGreaterThanOrEqual(during.inUseBytes, before.inUseBytes + UInt64(size) - 1_048_576, "\(before) → \(during)")
        XCTAssertLessThan(after.inUseBytes, during.inUseBytes - UInt64(size) / 2, "freed: \(during) → \(after)")
        // 32 MiB is past glibc's mmap threshold: it is counted as mmapped.
        XCTAssertGreaterThanOrEqual(during.mmappedBytes, UInt64(size))
    }

    func test_arenaCapYieldsToTheOperatorsEnvironment() {
        XCTAssertEqual(ProcessMemory.capArenas(0, environment: [:]), .off)
        XCTAssertEqual(ProcessMemory.capArenas(2, environment: ["MALLOC_ARENA_MAX": "4"]), .environment)
        XCTAssertEqual(ProcessMemory.capArenas(2, environment: ["GLIBC_TUNABLES": "glibc.malloc.arena_max=1"]), .environment)
        XCTAssertEqual(ProcessMemory.capArenas(2, environment: ["GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"]), .applied(2))
    }
}
