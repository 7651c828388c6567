import ArgumentParser
import Foundation
import MontanaClient
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaReachability
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// `montana reachability …`: read a node's reachability map, and (for tests and operators'
/// drills) submit reports as a client would.
struct ReachabilityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reachability", abstract: "Read a node's reachability map, or submit reports to a front.",
        subcommands: [ReachabilityShow.self, ReachabilityReport.self], defaultSubcommand: ReachabilityShow.self)
}

struct ReachabilityShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a node's map (its admin /reachability).")

    @Option(help: "The node's admin address (host:port).")
    var admin: String

    @Flag(help: "Print the JSON document.")
    var json = false

    func run() async throws {
        let doc = try await AdminDocument.fetch(admin: admin, path: "/reachability")
        if json { return try AdminDocument.printJSON(doc) }
        let vantages = doc["vantages"] as? [[String: Any]] ?? []
        print("reachability map (an entry steers clients only with reports from ≥ \(doc["quorum"] ?? 3) distinct source /16s)")
        if vantages.isEmpty { print("  no reports yet") }
        for v in vantages {
            print("vantage \(v["country"] ?? "ZZ") AS\(v["asn"] ?? 0):")
            let entries = v["entries"] as? [[String: Any]] ?? []
            Table.print(["front", "profile", "state", "sources", "say reachable"], entries.map { e in
                [String("\(e["node"] ?? "")".prefix(12)), "\(e["profile"] ?? "")", "\(e["state"] ?? "")",
                 "\(e["sources"] ?? 0)", "\(e["reachable_sources"] ?? 0)"]
            })
        }
    }
}

struct ReachabilityReport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Submit reachability reports to a front, as a client of a vantage would (for drills and tests).",
        discussion: """
        Opens a control session (a throwaway identity) straight to the front in --link and submits \
        --count reports saying --target is reachable or not for the vantage --country/--asn. The \
        front attributes them to the /16 it sees them come from: however many are sent, one network \
        casts one vote.
        """)

    @Option(help: "The front to report to: its montana:// member link.")
    var link: String

    @Option(help: "The node the reports are about (64 hex digits, or a prefix of at least 8 known to nothing else).")
    var target: String

    @Flag(help: "Report the target unreachable (default: reachable).")
    var unreachable = false

    @Option(help: "How many reports to send (1-10000).")
    var count = 1

    @Option(help: "The vantage's country (two letters, ZZ unknown).")
    var country = "ZZ"

    @Option(help: "The vantage's ASN (0 unknown).")
    var asn: UInt32 = 0

    @Option(help: "Local address to send from (default: the system's choice).")
    var source: String?

    func run() async throws {
        let member: MemberLink
        do { member = try MemberLink.parse(link) } catch { throw ValidationError("--link: \(error)") }
        guard let targetBytes = Hex.decode(target), targetBytes.count == 32 else { throw ValidationError("--target: 64 hex digits (a node id)") }
        guard (1...10_000).contains(count) else { throw ValidationError("--count: 1-10000") }
        let window = UInt32(clamping: TimeWindow.window(unixSeconds: WallClock.now()))
        let advert: ReachabilityAdvert
        do {
            advert = try ReachabilityAdvert(countryCode: country, asn: asn, target: targetBytes, profile: 0,
                                            reachableNum: unreachable ? 0 : 1, reachableDen: 1, observedWindow: window)
        } catch { throw ValidationError("--country/--asn: \(error)") }
        var local: SocketAddress?
        if let source {
            do { local = try SocketAddress(ipAddress: source, port: 0) } catch { throw ValidationError("--source: \(error)") }
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let identity = try IdentityKey.generate()
        let target = RelayTarget(nodeID: member.nodeID, kemPublicKey: member.kemPublicKey, host: member.host, port: Int(member.port))
        let session: DialedSession
        do {
            session = try await SessionDialer.connect(on: loop, to: target, identity: identity, alliance: member.alliance, localAddress: local).get()
        } catch {
            throw ValidationError("could not reach \(member.host):\(member.port): \(error)")
        }
        defer { session.close() }
        var taken = 0
        for _ in 0..<count {
            let answer = try await loop.flatSubmit { ReachabilityExchange.request(.submit([advert]), on: session.mux, loop: loop) }.get()
            if case .submitted(let n) = answer { taken += n }
        }
        print("sent \(count) report(s) to \(member.nodeID.short): \(taken) taken")
    }
}
