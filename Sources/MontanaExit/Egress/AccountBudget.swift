import NIOConcurrencyHelpers

/// Per-account caps at the exit, shared by every session of the node (thread-safe): concurrent
/// sessions per account (`[limits] sessions_per_account`) and egress streams per account across
/// all its sessions (`[limits] streams_per_account`). With `any-account` admission anyone can
/// mint accounts, so these bound what one account costs, not what one person costs; the
/// per-source limits at the front and the node-wide limits bound the rest.
///
/// Only accounts with something open have an entry, so the table is bounded by the sessions
/// the node holds.
public final class AccountBudget: Sendable {
    public let sessionsPerAccount: Int
    public let streamsPerAccount: Int

    private struct Usage {
        var sessions = 0
        var streams = 0
    }

    private let table = NIOLockedValueBox<[[UInt8]: Usage]>([:])

    public init(sessionsPerAccount: Int, streamsPerAccount: Int) {
        self.sessionsPerAccount = max(0, sessionsPerAccount)
        self.streamsPerAccount = max(0, streamsPerAccount)
    }

    /// Takes a session slot; false (nothing taken) when the account already has the maximum.
    public func openSession(_ account: [UInt8]) -> Bool {
        table.withLockedValue { t in
            var usage = t[account, default: Usage()]
            guard usage.sessions < sessionsPerAccount else { return false }
            usage.sessions += 1
            t[account] = usage
            return true
        }
    }

    /// Gives back a slot taken by a successful `openSession`.
    public func closeSession(_ account: [UInt8]) {
        update(account) { $0.sessions = max(0, $0.sessions - 1) }
    }

    /// Takes a stream slot; false (nothing taken) when the account's streams are at the cap.
    public func openStream(_ account: [UInt8]) -> Bool {
        table.withLockedValue { t in
            var usage = t[account, default: Usage()]
            guard usage.streams < streamsPerAccount else { return false }
            usage.streams += 1
            t[account] = usage
            return true
        }
    }

    /// Gives back a slot taken by a successful `openStream`.
    public func closeStream(_ account: [UInt8]) {
        update(account) { $0.streams = max(0, $0.streams - 1) }
    }

    /// What the account holds now (for tests and status).
    public func usage(_ account: [UInt8]) -> (sessions: Int, streams: Int) {
        table.withLockedValue { t in
            let u = t[account] ?? Usage()
            return (u.sessions, u.streams)
        }
    }

    /// Accounts with an open session or stream.
    public var accounts: Int { table.withLockedValue { $0.count } }

    private func update(_ account: [UInt8], _ change: (inout Usage) -> Void) {
        table.withLockedValue { t in
            guard var usage = t[account] else { return }
            change(&usage)
            t[account] = usage.sessions == 0 && usage.streams == 0 ? nil : usage
        }
    }
}
