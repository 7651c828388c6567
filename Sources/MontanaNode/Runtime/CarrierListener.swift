import NIOCore
import NIOPosix

extension ServerBootstrap {
    /// The options every carrier listener of a node uses (T0, T2, T3's internal port): a deep
    /// accept backlog, reads driven by the handlers (autoRead off: admission decides first), half
    /// closes passed on (carriers forward FINs), and no Nagle delay.
    static func carrierListener(group: any EventLoopGroup) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    }
}
