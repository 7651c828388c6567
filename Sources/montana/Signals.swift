import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Waits for SIGINT or SIGTERM, so long-running commands can shut down cleanly.
enum TerminationSignal {
    private final class Waiter: @unchecked Sendable {
        var sources: [any DispatchSourceSignal] = []
        var continuation: CheckedContinuation<Int32, Never>?
        let lock = NSLock()

        func fire(_ signal: Int32) {
            lock.lock()
            let c = continuation
            continuation = nil
            lock.unlock()
            c?.resume(returning: signal)
        }
    }

    static func wait() async -> Int32 {
        let waiter = Waiter()
        return await withCheckedContinuation { continuation in
            waiter.continuation = continuation
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { waiter.fire(sig) }
                source.resume()
                waiter.sources.append(source)
            }
        }
    }
}

enum LogSetup {
    nonisolated(unsafe) private static var done = false

    /// Logs to standard error at `level` (once per process).
    static func bootstrap(_ level: Logger.Level, label: String = "montana") -> Logger {
        if !done {
            done = true
            LoggingSystem.bootstrap { name in
                var handler = StreamLogHandler.standardError(label: name)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
