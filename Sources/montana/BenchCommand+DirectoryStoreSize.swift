import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaTransport
import MontanaWire

#if canImport(Glibc)
import Glibc
#endif

/// Figure 1 of `montana bench directory`: a store holding `records` real records (each its own
/// ML-DSA-65 identity, endorsed by an alliance made with `Alliance.create`, accepted by
/// `offerRecord`, i.e. valid under `RecordValidator.validate`), on disk and in memory. The memory
/// is measured in a fresh child process (`--open-store`), so the RSS before opening holds none of
/// the generated keys and records.
enum StoreSizeBench {
    struct Result {
        let records: Int
        let keygenSeconds: Double
        let signedBytes: Int
        let writeSeconds: Double
        let diskOpen: DiskSize
        let diskClosed: DiskSize
        let opened: OpenMeasurement
        /// Byte contents the store keeps per record: the signed envelope as gossiped.
        let accountedSigned: Int
        /// Its decoded copies: identity key, X-Wing key, endorsement, ids, strings, array headers.
        let accountedDecoded: Int
    }

    /// The SQLite file and its WAL companions.
    struct DiskSize {
        let database: Int
        let wal: Int
        let shm: Int
        var total: Int { database + wal + shm }

        static func of(_ path: String) -> DiskSize {
            func size(_ p: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? Int) ?? 0 }
            return DiskSize(database: size(path), wal: size(path + "-wal"), shm: size(path + "-shm"))
        }
    }

    /// What the child prints: resident set (bytes) before and after `DirectoryStore(path:)`,
    /// after `malloc_trim(0)` (heap the load freed returned to the system), the peak, and the time
    /// the open took (it re-validates every row: two ML-DSA-65 verifications a record).
    struct OpenMeasurement: Codable {
        let rssBefore: Int
        let rssAfter: Int
        let rssTrimmed: Int
        let peak: Int
        let seconds: Double
        let records: Int
    }

    /// Swift keeps a 32-byte header in front of every array's elements (64-bit).
    static let arrayHeader = 32

    static func run(records: Int, alliance: AllianceDocument, secret: AllianceSecret, directory: String,
                    progress: (String) -> Void) throws -> Result {
        let began = Date()
        let now = WallClock.now()
        let members = try BenchMember.make(count: records, exits: records * 6 / 10, alliance: alliance, secret: secret, now: now)
        let signed = try parallelMap(0..<members.count) { i in try members[i].signedRecord(now: now) }
        let keygen = Date().timeIntervalSince(began)
        progress(String(format: "  %d identities, endorsements and records signed in %.1f s", records, keygen))

        let path = (directory as NSString).appendingPathComponent("directory.sqlite")
        let alliancePath = (directory as NSString).appendingPathComponent("alliance.json")
        try alliance.write(to: alliancePath)
        let writeStart = Date()
        let (diskOpen, accountedSigned, accountedDecoded) = try write(signed, to: path, alliance: alliance, now: now)
        let writeSeconds = Date().timeIntervalSince(writeStart)
        let diskClosed = DiskSize.of(path)
        progress(String(format: "  written to SQLite in %.1f s; opening it in a fresh process", writeSeconds))
        let opened = try openInChild(path: path, alliancePath: alliancePath)
        guard opened.records == records else { throw BenchError("the child opened \(opened.records) records, not \(records)") }
        return Result(records: records, keygenSeconds: keygen, signedBytes: signed.reduce(0) { $0 + $1.count }, writeSeconds: writeSeconds,
                      diskOpen: diskOpen, diskClosed: diskClosed, opened: opened, accountedSigned: accountedSigned,
                      accountedDecoded: accountedDecoded)
    }

    /// Offers every record to a new file-backed store (one transaction each) and returns the
    /// file sizes while it is open and the bytes its records account for; the store is closed
    /// (checkpointing its WAL) on return.
    static func write(_ signed: [[UInt8]], to path: String, alliance: AllianceDocument, now: UInt64) throws
        -> (DiskSize, signed: Int, decoded: Int) {
        let store = try DirectoryStore(path: path, alliance: alliance, now: now)
        for (i, s) in signed.enumerated() {
            let outcome = store.offerRecord(s, now: WallClock.now())
            guard outcome == .added else { throw BenchError("record \(i) was not taken in: \(outcome)") }
        }
        guard store.recordCount == signed.count, store.writeErrors == 0 else {
            throw BenchError("the store holds \(store.recordCount) records, \(store.writeErrors) write errors")
        }
        var accountedSigned = 0, accountedDecoded = 0
        for m in store.members(now: WallClock.now()) {
            accountedSigned += m.signed.count + arrayHeader
            accountedDecoded += decodedBytes(m)
        }
        return (DiskSize.of(path), accountedSigned, accountedDecoded)
    }

    /// The decoded record's byte arrays and strings, the validated record's node id, its
    /// decoded endorsement (alliance 16 + node id 32 + label) and its derived strings.
    static func decodedBytes(_ m: DirectoryMember) -> Int {
        let r = m.record
        var n = r.identityPublicKey.count + r.kemPublicKey.count + (r.endorsement?.count ?? 0) + r.entry.exitNodeID.count
        n += r.endpoints.reduce(0) { $0 + $1.host.utf8.count } + (r.operatorLabel?.utf8.count ?? 0)
        n += m.nodeID.bytes.count + 16 + 32 + m.operatorLabel.utf8.count * 2 + m.addressGroup.utf8.count
        // identity, kem, endorsement, entry id, node id, endorsement's alliance and node id.
        return n + 7 * arrayHeader
    }

    /// Runs `montana bench directory --open-store PATH --alliance-file FILE` and reads its JSON line.
    static func openInChild(path: String, alliancePath: String) throws -> OpenMeasurement {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executablePath())
        process.arguments = ["bench", "directory", "--open-store", path, "--alliance-file", alliancePath]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("the open-store child exited with \(process.terminationStatus)") }
        do {
            return try JSONDecoder().decode(OpenMeasurement.self, from: data)
        } catch {
            throw BenchError("the open-store child printed \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
    }

    /// The child's side: measures opening the store and prints one JSON line.
    static func measureOpen(path: String, alliancePath: String) throws {
        let alliance = try AllianceDocument.load(path: alliancePath)
        let before = ProcStatus.read()
        let start = Date()
        let store = try DirectoryStore(path: path, alliance: alliance)
        let seconds = Date().timeIntervalSince(start)
        let after = ProcStatus.read()
        trimHeap()
        let trimmed = ProcStatus.read()
        // VmHWM is updated lazily by the kernel: never below an RSS read earlier.
        let m = OpenMeasurement(rssBefore: before.rss, rssAfter: after.rss, rssTrimmed: trimmed.rss, peak: max(trimmed.peak, after.rss),
                                seconds: seconds, records: store.recordCount)
        withExtendedLifetime(store) {}
        FileHandle.standardOutput.write(try JSONEncoder().encode(m))
    }

    /// glibc's `malloc_trim(0)` (not in the Swift Glibc module, so looked up by name; a no-op
    /// where it is missing).
    static func trimHeap() {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
        #endif
    }

    static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

/// VmRSS and VmHWM of this process, in bytes (0 where /proc is missing).
enum ProcStatus {
    static func read() -> (rss: Int, peak: Int) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func kib(_ key: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * 1024
        }
        return (kib("VmRSS:"), kib("VmHWM:"))
    }
}

/// A benchmark that could not produce its figure (a record refused, a child that failed).
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
