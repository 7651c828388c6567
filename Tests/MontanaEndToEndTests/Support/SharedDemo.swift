import Foundation
import NIOCore
import NIOPosix

/// One default demo shared by all tests of one XCTestCase class: `start()` in `class func setUp()`,
/// `stop()` in `class func tearDown()` (ends it by PID), `running()` at the top of each test. A
/// failed start is kept and rethrown by `running()`, so every test of the class reports it.
final class SharedDemo: @unchecked Sendable {
    private let lock = NSLock()
    private var demo: DemoHarness?
    private var setupError: (any Error)?

    func start() {
        let started = Result { try DemoHarness.start() }
        lock.lock()
        defer { lock.unlock() }
        switch started {
        case .success(let demo): self.demo = demo
        case .failure(let error): setupError = error
        }
    }

    func stop() {
        lock.lock()
        let demo = self.demo
        self.demo = nil
        lock.unlock()
        demo?.stop()
    }

    func running() throws -> DemoHarness {
        lock.lock()
        defer { lock.unlock() }
        if let setupError { throw setupError }
        guard let demo else { throw E2EError("the shared demo is not running") }
        return demo
    }
}

/// A one-thread event loop group made on first use; `shutdown()` (in a test's `tearDown`) ends it.
final class OnDemandEventLoop: @unchecked Sendable {
    private let lock = NSLock()
    private var group: MultiThreadedEventLoopGroup?

    func next() -> any EventLoop {
        lock.lock()
        defer { lock.unlock() }
        let group = self.group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        return group.next()
    }

    func shutdown() {
        lock.lock()
        let group = self.group
        self.group = nil
        lock.unlock()
        try? group?.syncShutdownGracefully()
    }
}
