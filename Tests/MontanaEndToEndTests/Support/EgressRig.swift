import Foundation
import MontanaCrypto
import NIOCore
import NIOPosix

/// A `LoneExitNode`, a `HoldingListener` destination and an `EgressProbe` session with a fresh
/// account, on one event loop group: the set-up of the egress limit tests. `stop()` closes the
/// probe and the listener, stops the node by PID and shuts the group down; a failed start stops
/// what it had started before throwing.
final class EgressRig: @unchecked Sendable {
    let node: LoneExitNode
    let listener: HoldingListener
    let probe: EgressProbe
    private let group: MultiThreadedEventLoopGroup

    private init(node: LoneExitNode, listener: HoldingListener, probe: EgressProbe, group: MultiThreadedEventLoopGroup) {
        self.node = node
        self.listener = listener
        self.probe = probe
        self.group = group
    }

    /// `extraConfig` is appended to the node's `node.toml` (see `LoneExitNode.start`).
    static func start(name: String, extraConfig: String = "") throws -> EgressRig {
        let node = try LoneExitNode.start(name: name, extraConfig: extraConfig)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var listener: HoldingListener?
        do {
            let holding = try HoldingListener(group: group)
            listener = holding
            let probe = try EgressProbe.open(on: group.next(), exit: node.city, account: try IdentityKey.generate())
            return EgressRig(node: node, listener: holding, probe: probe, group: group)
        } catch {
            listener?.close()
            node.stop()
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    func stop() {
        probe.close()
        listener.close()
        node.stop()
        try? group.syncShutdownGracefully()
    }
}
