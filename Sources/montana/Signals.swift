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

/// Nodes started by `montana demo` (environment `MONTANA_EXIT_WITH_PARENT=1`) stop when the demo
/// is gone, however it ended: they poll their parent once a second and send themselves SIGTERM
/// (the clean shutdown) when it changed. No city outlives a crashed or killed demo.
enum ParentWatch {
    static let variable = "MONTANA_EXIT_WITH_PARENT"
    nonisolated(unsafe) private static var timer: (any DispatchSourceTimer)?

    static func startIfAsked() {
        guard ProcessInfo.processInfo.environment[variable] == "1" else { return }
        let parent = getppid()
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now() + 1, repeating: 1)
        source.setEventHandler {
            if getppid() != parent { kill(getpid(), SIGTERM) }
        }
        source.resume()
        timer = source
    }
}
