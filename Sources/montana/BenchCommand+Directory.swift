import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire

/// `montana bench directory`: what the federation's directory costs (docs/BENCHMARKS.md,
/// "Federation (directory)"): (1) a store at `--records` real records, on disk and in memory;
/// (2) gossip bytes per member per hour in a `--members` alliance, simulated in-process with the
/// real store; (3) what a client downloads to bootstrap from a converged member. Prints markdown
/// tables. Use a release build: every record is a real ML-DSA-65 identity, signature and
/// endorsement, and every received item is verified.
struct DirectoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "directory",
        abstract: "Directory costs: store size at N records, gossip bytes per member per hour, a client's bootstrap download."
    )

    /// 256 in-memory stores of 256 records are about 1.1 GiB; beyond, the simulation outgrows a small machine.
    static let memberRange = 2...256
    /// The store's own bound (`DirectoryLimits.maxRecords`); 0 skips figure 1.
    static let recordRange = 0...4096
    static let hourRange = 1...24

    @Option(help: "Members of the simulated alliance (2-256).")
    var members = 100

    @Option(help: "Exits among them (default: 60 %).")
    var exits: Int?

    @Option(help: "Attesters per exit (default: 16, or members − 1 if fewer; a store keeps 16 per subject).")
    var attesters: Int?

    @Option(help: "Records in the store-size figure (0-4096; 0 skips it).")
    var records = 4096

    @Option(help: "Simulated hours (1-24): the first is the bootstrap, the last is reported as steady state.")
    var hours = 2

    @Option(help: "Seed of the simulation's random choices (start times, peers, attesters).")
    var seed: UInt64 = 1

    @Option(help: .hidden)
    var openStore: String?

    @Option(help: .hidden)
    var allianceFile: String?

    func validate() throws {
        guard Self.memberRange.contains(members) else { throw ValidationError("--members: 2 to 256") }
        guard Self.recordRange.contains(records) else { throw ValidationError("--records: 0 to 4096 (the store's bound)") }
        guard Self.hourRange.contains(hours) else { throw ValidationError("--hours: 1 to 24") }
        if let exits, !(0...members).contains(exits) { throw ValidationError("--exits: 0 to --members") }
        if let attesters, !(0..<members).contains(attesters) { throw ValidationError("--attesters: 0 to --members − 1") }
    }

    func run() throws {
        if let openStore {
            guard let allianceFile else { throw ValidationError("--open-store needs --alliance-file") }
            try StoreSizeBench.measureOpen(path: openStore, alliancePath: allianceFile)
            return
        }
        #if DEBUG
        let build = "debug build"
        #else
        let build = "release build"
        #endif
        let progress: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        print("montana bench directory (\(build), \(ProcessInfo.processInfo.activeProcessorCount) cores)")
        let (alliance, secret) = try Alliance.create(name: "Bench Alliance", open: false)
        let scratch = NSTemporaryDirectory() + "montana-bench-directory-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        if records > 0 {
            progress("store: \(records) records")
            let r = try StoreSizeBench.run(records: records, alliance: alliance, secret: secret, directory: scratch, progress: progress)
            printStore(r)
        }

        let exitCount = exits ?? members * 6 / 10
        progress("gossip: making \(members) members")
        let setup = Date()
        let bench = try BenchMember.make(count: members, exits: exitCount, alliance: alliance, secret: secret, now: WallClock.now())
        var parameters = GossipSimulation.Parameters()
        parameters.members = members
        parameters.exits = exitCount
        parameters.attesters = attesters ?? min(DirectoryLimits().maxAttestationsPerSubject, members - 1)
        parameters.hours = hours
        parameters.seed = seed
        let simulation = try GossipSimulation(parameters, alliance: alliance, members: bench)
        progress(String(format: "gossip: simulating %d h (members made in %.1f s)", hours, Date().timeIntervalSince(setup)))
        let g = try simulation.run(progress: progress)
        printGossip(g)
        printBootstrap(g)
    }

    private func printStore(_ r: StoreSizeBench.Result) {
        let o = r.opened
        let perRecord = Double(r.accountedSigned + r.accountedDecoded) / Double(r.records)
        print("""

        1. Store at \(r.records) records (each its own ML-DSA-65 identity, endorsed by an `Alliance.create` alliance, accepted by `offerRecord`)

        | | |
        |---|---|
        | signed record, mean | \(r.signedBytes / r.records) B |
        | on disk, store open (directory.sqlite + -wal + -shm) | \(ByteText.of(r.diskOpen.database)) + \(ByteText.of(r.diskOpen.wal)) + \(ByteText.of(r.diskOpen.shm)) = \(ByteText.of(r.diskOpen.total)) |
        | on disk, store closed | \(ByteText.of(r.diskClosed.total)) |
        | RSS of a fresh process before / after opening it | \(ByteText.of(o.rssBefore)) / \(ByteText.of(o.rssAfter)) (+\(ByteText.of(o.rssAfter - o.rssBefore))) |
        | RSS after malloc_trim(0) / peak | \(ByteText.of(o.rssTrimmed)) (+\(ByteText.of(o.rssTrimmed - o.rssBefore))) / \(ByteText.of(o.peak)) |
        | in-memory bytes accounted | \(ByteText.of(r.accountedSigned)) signed envelopes + \(ByteText.of(r.accountedDecoded)) decoded copies = \(ByteText.of(r.accountedSigned + r.accountedDecoded)) (\(ByteText.of(perRecord)) a record) |
        | opening it (re-validates every row) | \(String(format: "%.1f s", o.seconds)) |
        | writing it (\(r.records) offers: validation + one transaction each) | \(String(format: "%.1f s", r.writeSeconds)) |
        | making the keys, endorsements and records | \(String(format: "%.1f s", r.keygenSeconds)) |
        """)
    }

    private func printGossip(_ g: GossipSimulation.Result) {
        let p = g.parameters
        let n = Double(p.members)
        let first = g.hours[0], steady = g.hours[g.hours.count - 1]
        let steadyLabel = g.hours.count > 1 ? "steady state (hour \(g.hours.count))" : "(one hour only)"
        func row(_ label: String, _ f: (GossipSimulation.Hour) -> String) -> String { "| \(label) | \(f(first)) | \(f(steady)) |" }
        func mean(_ x: Int) -> String { ByteText.of(Double(x) / n) }
        func share(_ x: Int, _ h: GossipSimulation.Hour) -> String { String(format: "%.0f %%", h.total > 0 ? 100 * Double(x) / Double(h.total) : 0) }
        let lines = [
            "",
            "2. Gossip, \(p.members) members (\(p.exits) exits, \(p.attesters) attesters each), \(p.hours) h simulated: SyncFrame bytes with their uvarint prefix",
            "",
            "| per member per hour | first hour (bootstrap) | \(steadyLabel) |",
            "|---|---|---|",
            row("sent = received, mean") { mean($0.total) },
            row("sent + received, busiest member") { h in ByteText.of(zip(h.sent, h.received).map { $0 + $1 }.max() ?? 0) },
            row("exchanges initiated: scheduled + push") { h in String(format: "%.0f + %.0f", Double(h.scheduled) / n, Double(h.pushes) / n) },
            row("pushes deferred (1 s gap) / rounds skipped / refused by the responder's limit") { h in
                String(format: "%.0f / %.0f / %.1f", Double(h.deferred) / n, Double(h.skippedGap) / n, Double(h.rateLimited) / n)
            },
            row("peer sessions dialled (16 kept)") { h in String(format: "%.0f", Double(h.newSessions) / n) },
            row("records / attestations received") { h in String(format: "%.0f / %.0f", Double(h.recordsCarried) / n, Double(h.attestationsCarried) / n) },
            row("bytes: opening digests / self_records / answer digests") { h in
                "\(share(h.openingDigest, h)) / \(share(h.openingSelfRecord, h)) / \(share(h.answerDigest, h))"
            },
            row("bytes: records / attestations / end frames") { h in "\(share(h.records, h)) / \(share(h.attestations, h)) / \(share(h.ends, h))" },
            row("one client long-polling member 0: down / up (requests)") { h in
                "\(ByteText.of(h.clientAnswerBytes)) / \(ByteText.of(h.clientRequestBytes)) (\(h.clientRequests))"
            },
        ]
        print(lines.joined(separator: "\n"))
        let converged = g.convergedAfter.map { String(format: "%.0f s after the first member started", $0) } ?? "not within the run"
        print("""

        mean signed record \(g.recordBytes) B, attestation \(g.attestationBytes) B; every store held every record and attestation \(converged)
        (simulated \(p.hours) h in \(String(format: "%.0f s", g.runSeconds)); members start over the first 5 min, ring bootstrap, exchange 100 ms)
        """)
    }

    private func printBootstrap(_ g: GossipSimulation.Result) {
        let b = g.bootstrap
        print("""

        3. A client's bootstrap from a converged member (`/montana/directory/1.0.0`, empty digest)

        | | |
        |---|---|
        | request {digest: empty, wait_seconds: 0} | \(b.requestBytes) B |
        | answer: \(b.records) records | \(ByteText.of(b.recordBytes)) |
        | answer: \(b.attestations) attestations | \(ByteText.of(b.attestationBytes)) |
        | answer: end frame | \(b.endBytes) B |
        | answer, total | \(ByteText.of(b.answerBytes)) (\(b.answerBytes) B) |
        """)
    }
}
