import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// One peer exchange that only hands over a record (`self_record`) and ignores what comes back:
/// how `montana node deregister` publishes a withdrawal to members while the node itself may be
/// stopped. Members that accept it gossip it on; the node's own process, if running, sees the
/// withdrawal marker and stops re-signing its record.
public enum DirectoryPush {
    public static func push(_ signedRecord: [UInt8], to target: RelayTarget, identity: IdentityKey, alliance: [UInt8],
                            on loop: any EventLoop) -> EventLoopFuture<Void> {
        SessionDialer.connect(on: loop, to: target, identity: identity, alliance: alliance, timeout: .seconds(10))
            .flatMap { session -> EventLoopFuture<Void> in
                let promise = loop.makePromise(of: Void.self)
                guard let stream = session.mux.openStream(protocol: PeerExchangeService.protocolID, negotiated: { ok in
                    if !ok { promise.fail(CircuitError.refused(.permissionDenied)) }
                }) else {
                    session.close()
                    return loop.makeFailedFuture(CircuitError.carrierClosed)
                }
                let framed = FramedStream(stream: stream, maxMessageSize: SyncFrame.maxFrameBytes)
                var done = false
                framed.onMessage = { bytes in
                    guard !done, let frame = try? SyncFrame.decode(bytes), frame.end != nil else { return }
                    done = true
                    framed.send(SyncFrame(end: 1).encode())
                    framed.finish()
                    promise.succeed(())
                }
                framed.onEnd = { _ in
                    if !done {
                        done = true
                        promise.fail(CircuitError.carrierClosed)
                    }
                }
                // Our digest claims everything is known, so the peer sends nothing back but `end`.
                framed.send(SyncFrame(digest: [], selfRecord: signedRecord).encode())
                framed.start()
                return promise.futureResult.always { _ in
                    loop.scheduleTask(in: .milliseconds(200)) { session.close() }
                }
            }
    }

    /// Signs this node's withdrawal, leaves the marker for its running process, and pushes the
    /// withdrawal to the node itself, its bootstrap links and every member its store knows.
    /// Returns (reached, tried).
    public static func deregister(_ configuration: NodeConfiguration) async throws -> (reached: [String], failed: [String]) {
        guard let settings = configuration.directory else {
            throw NodeStartError.state(configuration.file, "node.alliance names no alliance.json: this node is in no directory to leave")
        }
        let marker = NodeDirectory.withdrawalMarker(database: settings.databasePath)
        FileManager.default.createFile(atPath: marker, contents: Data("withdrawn \(WallClock.now())\n".utf8))
        let signed = try NodeDirectory.signedRecord(configuration: configuration, endorsement: settings.endorsement,
                                                    now: WallClock.now(), withdrawal: true)
        var targets: [NodeID: RelayTarget] = [:]
        if let own = configuration.listen.publicEndpoint {
            let host = configuration.listen.transit.isWildcard ? own.host : configuration.listen.transit.host
            targets[configuration.nodeID] = RelayTarget(nodeID: configuration.nodeID, kemPublicKey: configuration.kem.publicKey,
                                                        host: host, port: own.port)
        }
        for link in settings.bootstrap {
            targets[link.nodeID] = RelayTarget(nodeID: link.nodeID, kemPublicKey: link.kemPublicKey, host: link.host, port: Int(link.port))
        }
        // The members the node knew, from a copy of its store (the node may be running and writing it).
        if FileManager.default.fileExists(atPath: settings.databasePath) {
            let copy = NSTemporaryDirectory() + "montana-deregister-\(getpid()).sqlite"
            try? FileManager.default.removeItem(atPath: copy)
            if (try? FileManager.default.copyItem(atPath: settings.databasePath, toPath: copy)) != nil,
               let store = try? DirectoryStore(path: copy, alliance: settings.alliance) {
                for m in store.members(now: WallClock.now()) where m.nodeID != configuration.nodeID {
                    if let member = NodeDirectory.allianceMember(m) { targets[m.nodeID] = member.target }
                }
            }
            try? FileManager.default.removeItem(atPath: copy)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var reached: [String] = []
        var failed: [String] = []
        for target in targets.values {
            do {
                try await push(signed, to: target, identity: configuration.identity, alliance: settings.alliance.uuidBytes,
                               on: group.next()).get()
                reached.append("\(target.nodeID.short) \(target.host):\(target.port)")
            } catch {
                failed.append("\(target.nodeID.short) \(target.host):\(target.port): \(error)")
            }
        }
        try? await group.shutdownGracefully()
        return (reached, failed)
    }
}
