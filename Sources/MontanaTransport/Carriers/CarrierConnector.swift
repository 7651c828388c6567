import NIOCore
import NIOPosix

/// Opens a carrier of one profile (PROTOCOL.md 2): a channel whose pipeline reads and writes
/// the carrier's raw byte stream, as if it were a TCP connection to the member. `initializer`
/// adds the caller's handlers (the preface, the session) at the end of the pipeline; the
/// connector's own handlers sit before them and must pass on nothing of the carrier's own
/// handshake, and must hold back every write until the carrier is ready, so the preface is
/// still the first byte inside the carrier.
///
/// The returned future succeeds when the channel is active (the caller's handlers then wait for
/// the preface answer); it fails with a `CarrierError` or the socket's error.
public protocol CarrierConnector: Sendable {
    var profile: CarrierProfile { get }
    func connect(on loop: any EventLoop, endpoint: CarrierEndpoint, connectTimeout: TimeAmount,
                 localAddress: SocketAddress?,
                 initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel>
}

/// A connector and the endpoint to use it on: what `CircuitDialer.connect` takes for a carrier
/// other than T0.
public struct CarrierDial: Sendable {
    public let connector: any CarrierConnector
    public let endpoint: CarrierEndpoint

    public init(connector: any CarrierConnector, endpoint: CarrierEndpoint) {
        self.connector = connector
        self.endpoint = endpoint
    }
}

/// Why a carrier other than T0 could not be opened, in words an operator or user can act on.
public enum CarrierError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The local helper program (obfs4proxy) is not installed or could not start.
    case helperUnavailable(String)
    /// The endpoint's params lack what the profile needs (T3: `cert`).
    case missingParams(String)
    /// The local SOCKS5 proxy of the pluggable transport refused or failed the connection.
    case socks(String)
    /// The carrier's own handshake did not finish in time.
    case timedOut(String)
    /// The other end (T2: the web server or CDN) answered but refused the carrier.
    case refused(String)

    public var description: String {
        switch self {
        case .helperUnavailable(let why), .missingParams(let why), .socks(let why), .refused(let why): return why
        case .timedOut(let what): return "\(what): timed out"
        }
    }
}

extension ClientBootstrap {
    /// The TCP dial every carrier and T0 use: half-closure allowed, `TCP_NODELAY`, bounded
    /// connect, bound to the client's source address when it has one.
    public static func carrierDial(on loop: any EventLoop, localAddress: SocketAddress?, connectTimeout: TimeAmount) -> ClientBootstrap {
        var bootstrap = ClientBootstrap(group: loop)
        if let localAddress { bootstrap = bootstrap.bind(to: localAddress) }
        return bootstrap
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
    }
}

extension EventLoopFuture where Value == any Channel {
    /// The connected channel and `ready`'s value once `ready` (completed by the channel's own
    /// handlers) succeeds. A failed connect fails `ready` too (its handlers never ran), with the
    /// error `connectError` makes of it; a failed `ready` closes the channel.
    public func awaiting<T: Sendable>(_ ready: EventLoopPromise<T>,
                                      connectError: @escaping @Sendable (any Error) -> any Error = { $0 })
        -> EventLoopFuture<(any Channel, T)> {
        flatMapErrorThrowing { error in
            ready.fail(error)
            throw connectError(error)
        }
        .flatMap { channel in
            ready.futureResult.map { (channel, $0) }.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
    }
}
