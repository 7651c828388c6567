import Foundation
import MontanaCrypto
import MontanaDirectory
import NIOPosix
import XCTest

final class FederationDebugTests: XCTestCase {
    func testDebugExchange() throws {
        let specs: [FederationNode.Spec] = [
            .init(name: "a", host: "127.41.0.1", country: "DE", operatorLabel: "A"),
            .init(name: "b", host: "127.42.0.1", country: "NL", operatorLabel: "B"),
        ]
        let federation = try Federation(name: "debug", specs: FederationTests.members)
        defer { federation.stop() }
        Thread.sleep(forTimeInterval: 20)
        let forger = try RecordForger(alliancePath: federation.alliance.documentPath, secretPath: federation.alliance.secretPath)
        let forged = try forger.all()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let a = federation.nodes[0], b = federation.nodes[1]
        let uuid = forger.alliance.uuidBytes
        for (name, target, who, records) in [("a->a all", a, a, forged.map(\.signed)), ("a->b all", b, a, forged.map(\.signed)),
                                             ("b->a big only", a, b, [forged[8].signed]), ("b->a first 8", a, b, Array(forged.prefix(8).map(\.signed)))] {
            let out = try FederationExchange.send(records: records, to: try target.target, as: who.identity, alliance: uuid, on: group.next())
            print("DEBUG \(name): \(out)")
            Thread.sleep(forTimeInterval: 6)
        }
        print(try a.metrics().lines("montana_directory_rejected_total"))
        print(try a.metrics().lines("montana_gossip_exchanges_total"))
        print(try b.metrics().lines("montana_directory_rejected_total"))
        print(a.diagnostics())
    }
}
