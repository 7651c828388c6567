import Logging
import MontanaDirectory
import NIOConcurrencyHelpers

/// The subscription file as the server serves it: re-read on every request, so a rewritten file is
/// served at once. A file that no longer decodes (an operator mid-edit, a bad copy) does not take
/// the service down: the last good version stays in service and one warning per distinct problem
/// is logged. Decoding is repeated only when the bytes changed.
final class SubscriptionSource: Sendable {
    struct Current: Sendable {
        let bytes: [UInt8]
        let document: SubscriptionDocument
    }

    let path: String
    private let logger: Logger
    private let state = NIOLockedValueBox<(good: Current?, problem: String?)>((nil, nil))

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// Reads and decodes the file, failing on any problem (used once at start).
    func load() throws(SubscriptionFileError) -> Current {
        let bytes = try SubscriptionDocument.readBytes(path: path)
        let current = Current(bytes: bytes, document: try SubscriptionDocument.decode(bytes, source: path))
        state.withLockedValue { $0 = (current, nil) }
        return current
    }

    /// The file now, or the last good version if it is unreadable or invalid; nil if it never was
    /// valid. Blocks on file I/O: call it off the event loop.
    func current() -> Current? {
        let bytes: [UInt8]
        do {
            bytes = try SubscriptionDocument.readBytes(path: path)
        } catch {
            return fallback(problem: "\(error)")
        }
        if let good = state.withLockedValue({ $0.good }), good.bytes == bytes { return good }
        do {
            let current = Current(bytes: bytes, document: try SubscriptionDocument.decode(bytes, source: path))
            state.withLockedValue { $0 = (current, nil) }
            return current
        } catch {
            return fallback(problem: "\(error)")
        }
    }

    private func fallback(problem: String) -> Current? {
        let (good, isNew) = state.withLockedValue { state -> (Current?, Bool) in
            let isNew = state.problem != problem
            state.problem = problem
            return (state.good, isNew)
        }
        if isNew {
            logger.warning("subscription file unusable, still serving the last good version", metadata: ["problem": "\(problem)"])
        }
        return good
    }
}
