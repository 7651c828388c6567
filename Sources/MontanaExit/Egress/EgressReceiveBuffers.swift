import NIOConcurrencyHelpers
import NIOCore

/// How large the buffers are that an exit reads its destinations' bytes into.
///
/// SwiftNIO reads each socket into a buffer its receive allocator sizes, and the channel keeps
/// that buffer for the next read for as long as it is open. The adaptive allocator grows it to
/// 64 KiB on a connection that fills it, which is what one bulk download wants — but 1,000 open
/// downloads then keep 64 MiB of buffers alive even while they wait for their yamux windows
/// (measured with `scripts/bench --only streams`: it was most of the exit's peak heap).
///
/// So the first `threshold` egress connections open at a time (64 by default, `[limits]
/// egress_small_buffers_after`) get NIO's default allocator (up to 64 KiB); a connection opened
/// while more are open reads into at most `smallMaximum` (8 KiB). The bytes read are copied into
/// the stream's frames at once, so the buffer size only changes how many reads a burst takes.
/// Past the threshold the buffers cost at most 8 KiB per connection, and one event-loop turn over
/// 256 readable sockets reads 2 MiB, not 16 MiB (what a session holds back for its kept copy).
public final class EgressReceiveBuffers: Sendable {
    public static let defaultThreshold = 64
    /// The largest buffer a connection opened past the threshold reads into.
    public static let smallMaximum = 8 * 1024
    /// The largest buffer any egress connection reads into (NIO's default maximum).
    public static let largeMaximum = 64 * 1024

    public let threshold: Int
    private let open = NIOLockedValueBox(0)

    public init(threshold: Int = EgressReceiveBuffers.defaultThreshold) {
        self.threshold = max(0, threshold)
    }

    /// Egress TCP connections open (or connecting) now.
    public var openConnections: Int { open.withLockedValue { $0 } }

    /// The largest receive buffer for a connection opened now.
    public var maximumForNextConnection: Int {
        openConnections >= threshold ? Self.smallMaximum : Self.largeMaximum
    }

    /// The allocator for a connection opened now.
    public func allocatorForNextConnection() -> AdaptiveRecvByteBufferAllocator {
        let maximum = maximumForNextConnection
        return AdaptiveRecvByteBufferAllocator(minimum: 64, initial: min(2048, maximum), maximum: maximum)
    }

    func connectionOpened() { open.withLockedValue { $0 += 1 } }

    func connectionClosed() { open.withLockedValue { $0 = max(0, $0 - 1) } }
}
