import Foundation
import Logging
import MontanaClient
import MontanaCrypto
import MontanaReachability
import MontanaDirectory
import MontanaExit
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `montana client`: the local proxy ports from a client configuration, the directory (from a
/// subscription) and the loopback status port.
public final class ClientRuntime: @unchecked Sendable {
    public let proxy: LocalProxyServer
    public let directory: ClientDirectory?
    public let configuration: ClientConfiguration
    private var admin: AdminServer?
    /// The client's own observations on disk (`client-reachability.sqlite`), saved at shutdown too.
    private var reachabilityCache: ReachabilityCache?
    private var timers: [RepeatedTask] = []
    private let feelerTask = NIOLockedValueBox<(task: Scheduled<Void>?, stopped: Bool)>((nil, false))
    private let logger: Logger
    public private(set) var adminPort: Int?
    public private(set) var subscriptionTitle: String?
    private var pass: PassFile?
    /// The obfs4proxy managed client (T3), started on the first T3 dial; nil without T3.
    private var obfs4: ManagedTransport?
    /// Circuits and failures, copied from the proxy's loop every second for the status port
    /// (whose handlers run on another loop and must not block).
    private let snapshot = NIOLockedValueBox<(circuits: [CircuitStatus], failures: [NodeID: String], steering: [String: any Sendable])>(([], [:], [:]))

    public static func members(_ peers: [PeerConfiguration]) -> [AllianceMember] {
        peers.map { p in
            AllianceMember(nodeID: p.nodeID, kemPublicKey: p.kemPublicKey, host: p.endpoint.host, port: p.endpoint.port,
                           country: p.country, roles: p.roles, endpoints: p.carriers)
        }
    }

    init(configuration: ClientConfiguration, proxy: LocalProxyServer, directory: ClientDirectory?, pass: PassFile?, logger: Logger) {
        self.configuration = configuration
        self.proxy = proxy
        self.directory = directory
        self.pass = pass
        self.logger = logger
    }

    /// Loads the subscription (file or URL), builds the proxy and the directory, and starts
    /// listening. `adminOverride` replaces `admin` from the config (the demo's `--admin`).
    public static func start(_ configuration: ClientConfiguration, logger: Logger, adminOverride: HostPort? = nil) async throws -> ClientRuntime {
        try checkSource(configuration)
        // Every app connection holds a descriptor (a browser opens hundreds): use all the kernel allows.
        let descriptors = FileDescriptorBudget.raiseSoftLimitToHard()
        logger.info("\(descriptors)", metadata: ["fd_limit": "\(descriptors.after)", "fd_hard_limit": "\(descriptors.hard)"])
        var options = configuration.circuitOptions
        var subscription: SubscriptionDocument?
        if let source = configuration.subscription {
            subscription = try await loadSubscription(source)
        }
        var pass: PassFile?
        if let path = configuration.passPath {
            do { pass = try PassFile.load(path: path) } catch { throw ClientRuntimeError.pass("\(configuration.file): client.pass: \(error)") }
        } else if let embedded = subscription?.account?.pass {
            pass = embedded
        }
        var account = configuration.account
        if let seed = subscription?.account?.bearerSeed, configuration.passPath == nil {
            account = try IdentityKey(seed: seed)
        }
        if let pass {
            if let problem = passProblem(pass, account: account, alliance: subscription?.alliance, now: WallClock.now()) {
                logger.warning("\(problem)")
            }
            options.pass = pass.signedBytes
            let checked = pass, holder = account, allianceForCheck = subscription?.alliance
            options.passCheck = { ClientRuntime.passProblem(checked, account: holder, alliance: allianceForCheck, now: WallClock.now()) }
        }
        let carrier = try carriers(configuration, logger: logger)
        options.carriers = configuration.carriers
        if let t3 = carrier { options.connectors[.t3] = Obfs4Connector(transport: t3) }
        if configuration.carriers.contains(.t2) {
            do {
                options.connectors[.t2] = try WebSocketConnector(caFile: configuration.t2CAFile)
            } catch {
                throw ClientRuntimeError.configuration("\(configuration.file): [client] t2_ca_file: cannot load the TLS roots: \(error)")
            }
        }
        let alliance = subscription?.alliance
        if configuration.carriers.contains(.t1) {
            // The alliance id is T1's PSK (PROTOCOL.md 2.2): tokens bind to this alliance.
            let universal = (alliance?.universalT1).map {
                T1Connector.Universal(publicKey: $0.x25519PublicKeyBytes, shortID: $0.shortIDBytes.first ?? [], serverName: $0.serverName)
            }
            options.connectors[.t1] = T1Connector(psk: alliance?.uuidBytes ?? configuration.alliance ?? [], universal: universal)
        }
        let staticMembers = members(configuration.members)
        let proxy = LocalProxyServer(account: account, members: staticMembers, defaultSelection: configuration.defaultExit,
                                     alliance: alliance?.uuidBytes ?? configuration.alliance, auth: configuration.credentials,
                                     options: options, logger: logger)
        var directory: ClientDirectory?
        var reachabilityCache: ReachabilityCache?
        if let subscription, let alliance {
            let links = subscription.links
            let d = try ClientDirectory(alliance: alliance, bootstrap: links, cachePath: configuration.cachePath,
                                        loop: proxy.manager.loop, options: options, logger: logger)
            let manager = proxy.manager
            d.onFrontAttempt = { target, started, result in
                // The front as the manager knows it (label, roles), else from the link itself.
                let front = manager.members.first { $0.nodeID == target.nodeID }
                    ?? AllianceMember(nodeID: target.nodeID, kemPublicKey: target.kemPublicKey, host: target.host, port: target.port,
                                      country: nil, roles: [.front])
                manager.recordControlDial(front, started: started, result: result)
            }
            // What worked from each network survives restarts (PROTOCOL.md 9).
            let cache = configuration.cachePath.flatMap { path in
                try? ReachabilityCache(path: (path as NSString).deletingLastPathComponent + "/client-reachability.sqlite")
            }
            reachabilityCache = cache
            manager.onVantageChanged = { group in
                guard let cache else { return }
                manager.restoreObservations(cache.load(sourceGroup: group), sourceGroup: group)
            }
            // Reachability reports and the map for this vantage, at most once a minute.
            let lastReport = NIOLockedValueBox<NIODeadline?>(nil)
            d.onRead = { session in
                let now = NIODeadline.now()
                guard lastReport.withLockedValue({ $0.map { now - $0 >= ClientRuntime.reportInterval } ?? true }) else { return }
                lastReport.withLockedValue { $0 = now }
                cache?.save(sourceGroup: manager.reachability.sourceGroup, manager.reachability.all)
                manager.exchangeReachability(on: session.mux).whenFailure { error in
                    logger.debug("reachability exchange failed", metadata: ["error": "\(error)"])
                    // Not another minute: the next read after `reportRetry` tries again.
                    lastReport.withLockedValue { $0 = now - ClientRuntime.reportInterval + ClientRuntime.reportRetry }
                }
            }
            d.onUpdate = { members in
                manager.update(members: staticMembers + members.filter { m in !staticMembers.contains { $0.nodeID == m.nodeID } })
                // Automatic selection picks by measured path time: measure new exits in the background.
                manager.measureUnmeasured()
            }
            directory = d
        }
        if let path = configuration.geoipPath {
            let database: any GeoIPDatabase
            do { database = try GeoIP.open(path: path) } catch {
                throw ClientRuntimeError.configuration("\(configuration.file): [client] geoip: \(error)")
            }
            var asnDatabase: (any GeoIPDatabase)?
            if let asnPath = configuration.geoipASNPath {
                do { asnDatabase = try GeoIP.open(path: asnPath) } catch {
                    throw ClientRuntimeError.configuration("\(configuration.file): [client] geoip_asn: \(error)")
                }
            }
            let asns = asnDatabase ?? database
            let manager = proxy.manager
            manager.loop.execute {
                // Country and, where the database has it, the autonomous system (a CSV's third
                // column, an mmdb's autonomous_system_number: GeoLite2-ASN, DB-IP).
                manager.vantageLookup = { address in
                    database.country(for: address).map { Vantage(country: $0, asn: asns.asn(for: address) ?? 0) }
                }
            }
        }
        let runtime = ClientRuntime(configuration: configuration, proxy: proxy, directory: directory, pass: pass, logger: logger)
        runtime.reachabilityCache = reachabilityCache
        runtime.obfs4 = carrier
        let metrics = MontanaMetrics.shared
        let manager = proxy.manager
        manager.loop.execute { manager.onSteeringEvent = { metrics.steeringEvents(kind: $0.kind.rawValue) } }
        runtime.subscriptionTitle = subscription?.title
        var listeners: [LocalProxyServer.Listener] = []
        if let s = configuration.socks { listeners.append(.init(kind: .socks5, host: s.host, port: s.port)) }
        if let h = configuration.http { listeners.append(.init(kind: .http, host: h.host, port: h.port)) }
        if let m = configuration.mixed { listeners.append(.init(kind: .mixed, host: m.host, port: m.port)) }
        try await proxy.start(listeners)
        directory?.start()
        if directory == nil { warnAboutExitsWithoutFronts(proxy.manager, logger: logger) }
        if let admin = adminOverride ?? configuration.admin {
            try await runtime.startAdmin(admin)
        }
        runtime.scheduleMaintenance(subscriptionSource: configuration.subscription, interval: subscription?.update.intervalHours)
        return runtime
    }

    /// T3 for this client: an obfs4proxy managed client (not started until the first T3 dial),
    /// its state in `pt-client/` beside the cache. nil when the ladder has no t3, or — with the
    /// default ladder — when obfs4proxy is not installed (then T3 is skipped). A ladder the user
    /// set to include t3 without obfs4proxy is a configuration error.
    static func carriers(_ configuration: ClientConfiguration, logger: Logger) throws -> ManagedTransport? {
        guard configuration.carriers.contains(.t3) else { return nil }
        let key = "\(configuration.file): [client] carriers"
        guard ManagedTransport.locate(configuration.obfs4Binary) != nil else {
            if configuration.carriersConfigured {
                throw ClientRuntimeError.configuration(ManagedTransportError.notInstalled(key, configuration.obfs4Binary).description)
            }
            logger.info("T3 (obfs4) skipped: obfs4proxy is not installed", metadata: ["binary": "\(configuration.obfs4Binary)"])
            return nil
        }
        let base = configuration.cachePath.map { ($0 as NSString).deletingLastPathComponent }
            ?? (configuration.file as NSString).deletingLastPathComponent
        let state = ((base.isEmpty ? "." : base) as NSString).appendingPathComponent("pt-client")
        return ManagedTransport(settings: .init(binary: configuration.obfs4Binary, stateDirectory: state, mode: .client, configKey: key),
                                logger: logger)
    }

    static func loadSubscription(_ source: String) async throws -> SubscriptionDocument {
        do {
            let fetched = try await SubscriptionFetcher.fetch(url: source)
            return try SubscriptionDocument.decode(fetched.body, source: source)
        } catch {
            throw ClientRuntimeError.subscription("subscription \(source): \(error)")
        }
    }

    /// What is wrong with a pass before any exit is asked (the exit would refuse it too).
    public static func passProblem(_ pass: PassFile, account: IdentityKey, alliance: AllianceDocument?, now: UInt64) -> String? {
        let p = pass.pass
        if !ConstantTime.equal(p.accountID, account.accountID) { return "pass: belongs to another account than this client's (\(Hex.encode(p.accountID).prefix(16))…)" }
        if now < p.notBefore { return "pass: not valid yet (valid from \(p.notBefore), unix seconds)" }
        if now > p.notAfter { return "pass: expired at \(p.notAfter) (unix seconds); ask your provider for a new one" }
        if let alliance, !alliance.passIssuerKeys.contains(where: { NodeID(identityPublicKey: $0).bytes == p.issuer }) {
            return "pass: issued by a key the alliance \(alliance.name) does not list (foreign issuer)"
        }
        return nil
    }

    private func startAdmin(_ address: HostPort) async throws {
        let manager = proxy.manager
        let directory = self.directory
        let configuration = self.configuration
        let title = subscriptionTitle
        let pass = self.pass
        let snapshot = self.snapshot
        timers.append(manager.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { _ in
            let circuits = manager.status(), failures = manager.lastFailure, steering = manager.steeringDocument()
            snapshot.withLockedValue { $0 = (circuits, failures, steering) }
        })
        let status: AdminServer.StatusProvider = {
            let (circuits, failures, steering) = snapshot.withLockedValue { $0 }
            var doc: [String: any Sendable] = [
                "role": "client",
                "circuits": circuits.map { c -> [String: any Sendable] in
                    ["exit": c.exit, "exit_country": c.exitCountry, "front": c.front, "relayed": c.relayed,
                     "streams_active": c.streamsActive, "streams_opened": c.streamsOpened,
                     "bytes_up": c.bytesUp, "bytes_down": c.bytesDown, "age_seconds": Int(clamping: c.ageSeconds),
                     "reserve": c.reserve ?? "", "resumptions": c.resumptions ?? 0, "carrier": c.carrier ?? "t0",
                     "last_stall_ms": c.lastStallMilliseconds.map { Int(clamping: $0) as any Sendable } ?? NSNull()]
                },
                "advisory_exits": configuration.advisoryExits,
                "default_exit": "\(configuration.defaultExit)",
            ]
            for (key, value) in steering { doc[key] = value }
            if let title { doc["subscription"] = title }
            if let directory {
                doc["directory"] = ["front": directory.frontLabel ?? "", "last_refresh": Int(clamping: directory.lastRefresh),
                                    "error": directory.lastError ?? "", "members": directory.store.members(now: WallClock.now()).count]
                    as [String: any Sendable]
            }
            if let pass {
                let problem = ClientRuntime.passProblem(pass, account: configuration.account, alliance: directory?.alliance, now: WallClock.now())
                doc["pass"] = ["not_before": Int(clamping: pass.pass.notBefore), "not_after": Int(clamping: pass.pass.notAfter),
                               "quota_bytes": Int(clamping: pass.pass.quotaBytes), "problem": problem ?? ""] as [String: any Sendable]
            }
            doc["last_failures"] = Dictionary(uniqueKeysWithValues: failures.map { ($0.key.short, $0.value) })
            return doc
        }
        var documents: [String: AdminServer.StatusProvider] = [:]
        if let directory {
            documents["/directory"] = { directory.document() }
        }
        let server = AdminServer(address: address, status: status, documents: documents)
        adminPort = try await server.start()
        admin = server
    }

    /// How often the client submits its reachability reports and fetches the map.
    static let reportInterval = TimeAmount.seconds(60)
    /// After a failed exchange (the directory session broke under it, a front that timed out),
    /// the next directory read at least this much later tries again.
    static let reportRetry = TimeAmount.seconds(10)

    /// Feeler probes at `probe_interval_seconds` on average, each delay drawn from ±50 % so
    /// clients do not probe in step.
    private func scheduleFeeler() {
        let seconds = configuration.probeIntervalSeconds
        guard seconds > 0 else { return }
        let manager = proxy.manager
        let delay = TimeAmount.milliseconds(Int64(seconds) * Int64.random(in: 500...1500))
        let task = manager.loop.scheduleTask(in: delay) { [weak self] in
            guard let self, !self.feelerTask.withLockedValue({ $0.stopped }) else { return }
            manager.feelOneFront()
            self.scheduleFeeler()
        }
        feelerTask.withLockedValue { $0.task = task }
    }

    private func scheduleMaintenance(subscriptionSource: String?, interval: Int?) {
        let loop = proxy.manager.loop
        scheduleFeeler()
        if let directory {
            timers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(30), delay: .seconds(30)) { _ in directory.expire() })
        }
        if let source = subscriptionSource, let directory {
            let hours = max(1, interval ?? 12)
            let logger = self.logger
            timers.append(loop.scheduleRepeatedTask(initialDelay: .hours(Int64(hours)), delay: .hours(Int64(hours))) { _ in
                Task {
                    do {
                        let doc = try await ClientRuntime.loadSubscription(source)
                        directory.update(bootstrap: doc.links)
                        logger.info("subscription refreshed", metadata: ["bootstrap": "\(doc.links.count)"])
                    } catch {
                        logger.warning("subscription refresh failed; keeping the last one", metadata: ["error": "\(error)"])
                    }
                }
            })
        }
    }

    public func shutdown() async {
        for t in timers { t.cancel() }
        obfs4?.stop()
        feelerTask.withLockedValue { $0.task?.cancel(); $0 = (nil, true) }
        directory?.stop()
        if let admin { try? await admin.stop() }
        // What this run saw since the last save (at most a minute of it) is not lost.
        if let cache = reachabilityCache {
            let manager = proxy.manager
            if let seen = try? await manager.loop.submit({ (group: manager.reachability.sourceGroup, all: manager.reachability.all) }).get() {
                cache.save(sourceGroup: seen.group, seen.all)
                cache.flush()
            }
        }
        await proxy.shutdown()
    }
}

extension ClientRuntime {
    /// A `source` no local socket can be bound to fails at start, naming file and key.
    public static func checkSource(_ configuration: ClientConfiguration) throws(ClientRuntimeError) {
        if let source = configuration.source, let problem = source.bindProblem() {
            throw .sourceUnusable("\(configuration.file): client.source: \(problem)")
        }
    }

    /// Says at start which exits cannot be used without `exit_as_front` (no other front is
    /// listed), rather than only on each failed connection.
    static func warnAboutExitsWithoutFronts(_ manager: CircuitManager, logger: Logger) {
        for exit in manager.exitsWithoutOtherFronts() {
            logger.warning("\(CircuitManagerError.exitAsFrontRequired)", metadata: ["exit": "\(exit.label)"])
        }
    }
}

public enum ClientRuntimeError: Error, CustomStringConvertible {
    case sourceUnusable(String)
    case subscription(String)
    case pass(String)
    case configuration(String)

    public var description: String {
        switch self {
        case .sourceUnusable(let why), .subscription(let why), .pass(let why), .configuration(let why): return why
        }
    }
}
