import NIOCore
import NIOPosix

/// Connects to the first reachable of several checked addresses, starting the next attempt
/// 250 ms after the previous one (RFC 8305 style), IPv6 and IPv4 interleaved. Only the given
/// addresses are ever dialled: they are the ones the exit policy approved. At most `maxAttempts`
/// of them (the first ones after interleaving) are dialled, so one open costs a bounded number
/// of sockets however many addresses a name has.
public enum HappyEyeballsConnector {
    static let stagger = TimeAmount.milliseconds(250)

    public static func connect(addresses: [SocketAddress], maxAttempts: Int, on loop: any EventLoop, timeout: TimeAmount,
                               source: EgressSource = EgressSource(),
                               recvAllocator: AdaptiveRecvByteBufferAllocator = AdaptiveRecvByteBufferAllocator(),
                               initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<any Channel> {
        let ordered = Array(interleave(addresses).prefix(max(1, maxAttempts)))
        guard !ordered.isEmpty else { return loop.makeFailedFuture(ChannelError.connectTimeout(timeout)) }
        let promise = loop.makePromise(of: (any Channel).self)
        let state = NIOLoopBoundBox(AttemptState(), eventLoop: loop)

        @Sendable func launchNext() {
            guard !state.value.done, state.value.next < ordered.count else { return }
            let index = state.value.next
            state.value.next += 1
            var bootstrap = ClientBootstrap(group: loop)
            if let local = source.address(for: ordered[index]) { bootstrap = bootstrap.bind(to: local) }
            bootstrap = bootstrap
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.autoRead, value: false)
                .channelOption(.recvAllocator, value: recvAllocator)
                .connectTimeout(timeout)
                .channelInitializer(initializer)
            let future = bootstrap.connect(to: ordered[index])
            let stagger = loop.scheduleTask(in: stagger) { launchNext() }
            future.whenComplete { result in
                switch result {
                case .success(let channel):
                    if state.value.done {
                        channel.close(promise: nil)
                    } else {
                        state.value.done = true
                        stagger.cancel()
                        promise.succeed(channel)
                    }
                case .failure(let error):
                    state.value.failures += 1
                    if state.value.failures == ordered.count, !state.value.done {
                        state.value.done = true
                        promise.fail(error)
                    } else {
                        // Fail fast to the next address instead of waiting for the stagger.
                        stagger.cancel()
                        launchNext()
                    }
                }
            }
        }
        launchNext()
        return promise.futureResult
    }

    struct AttemptState {
        var next = 0
        var failures = 0
        var done = false
    }

    static func interleave(_ addresses: [SocketAddress]) -> [SocketAddress] {
        let v6 = addresses.filter { if case .v6 = $0 { return true } else { return false } }
        let v4 = addresses.filter { if case .v4 = $0 { return true } else { return false } }
        var out: [SocketAddress] = []
        for i in 0..<max(v6.count, v4.count) {
            if i < v6.count { out.append(v6[i]) }
            if i < v4.count { out.append(v4[i]) }
        }
        return out
    }
}

/// `[exit] egress_source`: the local addresses egress connections leave from (one IPv4, one
/// IPv6, either optional), for exits with a dedicated egress address. A family without a
/// configured source lets the OS choose.
public struct EgressSource: Sendable, Equatable {
    public var ipv4: SocketAddress?
    public var ipv6: SocketAddress?

    public init(ipv4: SocketAddress? = nil, ipv6: SocketAddress? = nil) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    func address(for target: SocketAddress) -> SocketAddress? {
        switch target.protocol {
        case .inet: return ipv4
        case .inet6: return ipv6
        default: return nil
        }
    }
}
