import Foundation
import MontanaCrypto
import MontanaDirectory
import NIOPosix
import XCTest

final class FederationDebugTests: XCTestCase {
    func testDebugExchange() throws {
        let federation = try Federation(name: "debug", specs: FederationTests.members)
        defer { federation.stop() }
        let client = try federation.makeClient("client")
        try client.start(subscription: federation.subscriptionPath)
        let honest = federation.nodes.filter { $0.spec.name != FederationTests.liarName }
        let liar = try federation.node(FederationTests.liarName)
        try federation.wait(for: client, timeout: 90, "converged") { doc in
            honest.allSatisfy { node in
                guard let m = doc.member(node.nodeID) else { return false }
                return !node.spec.isExit || m.corroborated
            } && (doc.member(liar.nodeID)?.contradicting ?? 0) >= 2
        }
        let forger = try RecordForger(alliancePath: federation.alliance.documentPath, secretPath: federation.alliance.secretPath)
        let forged = try forger.all()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let uuid = forger.alliance.uuidBytes
        let insider = federation.nodes[0].identity
        for _ in 0..<3 {
            for node in federation.nodes {
                let began = Date()
                let out = try FederationExchange.send(records: forged.map(\.signed), to: try node.target, as: insider, alliance: uuid, on: group.next())
                print("DEBUG \(node.spec.name): \(out) in \(Date().timeIntervalSince(began))")
            }
        }
        for node in federation.nodes {
            print(node.spec.name, try node.metrics().lines("montana_gossip_exchanges_total"))
        }
    }
}
