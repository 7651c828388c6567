/// A byte budget shared by many yamux sessions (e.g. all sessions of a node): receive-window
/// growth beyond the initial window is reserved from it, and given back when the stream ends.
/// Under pressure `reserve` says no and windows simply stop growing.
public protocol YamuxWindowBudget: AnyObject, Sendable {
    /// Takes `bytes` from the budget; false (taking nothing) when that would exceed it.
    func reserve(_ bytes: UInt64) -> Bool
    func release(_ bytes: UInt64)
}
