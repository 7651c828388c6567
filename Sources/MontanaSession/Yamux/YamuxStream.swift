import NIOCore

/// One stream's flow-control and close state, owned by `YamuxConnection`.
struct YamuxStream: Sendable {
    let id: UInt32
    let openedByPeer: Bool

    // Send side: what the peer lets us send, and what waits for its window.
    var sendWindow: UInt32 = YamuxConfiguration.initialWindowSize
    var pending = CircularBuffer<ByteBuffer>()
    var pendingBytes = 0
    /// The caller closed its half; FIN follows the last pending byte.
    var closeRequested = false
    var finSent = false
    /// `write` told the caller to stop, so a `.writable` event is owed once the backlog drains.
    var owesWritableEvent = false

    // Receive side. Invariant: receiveCredit + unconsumed <= receiveWindowSize; the difference is
    // consumed bytes not yet handed back to the peer in a window update.
    var receiveWindowSize: UInt32 = YamuxConfiguration.initialWindowSize
    var receiveCredit: UInt32 = YamuxConfiguration.initialWindowSize
    var unconsumed = 0
    /// When the current auto-tuning epoch (the interval since the last window update) started.
    var epochStart: UInt64?
    var finReceived = false

    init(id: UInt32, openedByPeer: Bool) {
        self.id = id
        self.openedByPeer = openedByPeer
    }

    var isFinished: Bool { finSent && finReceived }
}
