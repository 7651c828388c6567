import NIOConcurrencyHelpers
import Foundation
import Logging
import MontanaCrypto
import MontanaReachability
import MontanaExit
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// A running member: the T0 transit listener (every connection starts with a preface), the
/// roles it plays (front: relay to members; exit: egress), its directory record, and the
/// loopback admin server with /metrics and /status.
public final class Node: Sendable {
    public let configuration: NodeConfiguration
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    let observer: NodeObserver
    let exit: ExitRuntime?
    /// Keeps the exit policy's view of this node's own addresses current (exit role only).
    let selfAddresses: SelfAddressMonitor?
    /// The same without members' transit endpoints, for members' (attestation) sessions.
    let memberSelfAddresses: SelfAddressMonitor?
    /// Members' transit endpoints, which members' sessions may reach (attestation echoes).
    let memberEndpoints = MemberEndpoints()
    let admission: SourceAdmission
    let records: DirectoryRecords
    /// The alliance directory (store, gossip, attestations); nil without `node.alliance`.
    let directory: NodeDirectory?
    /// Sessions an exit holds when their carrier breaks, until the client resumes them
    /// (PROTOCOL.md 5.3); nil on fronts and with `resume_hold_seconds = 0`.
    let resumable: ResumableSessions?
    /// Reachability reports from clients (and from members' maps), by vantage (PROTOCOL.md 9).
    let reachabilityMap = ReachabilityMap()
    /// T3 (`[carriers.obfs4]`): obfs4proxy supervised in managed server mode; nil when off.
    let obfs4: Obfs4Carrier?
    /// T2 (`[carriers.ws]`): the WebSocket listener; nil when off.
    let webSocket: WebSocketListener?
    /// T1 (`[carriers.tls]`): the relay to the cover site; nil when off.
    let t1: T1Listener?
    /// Carriers accepted on the T0 transit listener (status: `carriers.t0.connections`).
    let t0Accepted = NIOLockedValueBox(0)
    private let state = RunningNodeState()
    /// Relays bulk circuits with splice(2) (`[limits] kernel_splice`, Linux); nil: all in userspace.
    let splicer: KernelSplicer?
    /// What `[limits] malloc_arenas` did at start (status `memory.malloc_arenas`).
    let arenaCap: ProcessMemory.ArenaCap
    /// Gives free heap pages back after bursts (status `memory.trims`).
    let heapTrimmer = HeapTrimmer()
    /// The exit's egress receive buffers (status `egress_connections`); nil on a front.
    let egressBuffers: EgressReceiveBuffers?

    public init(configuration: NodeConfiguration, logger: Logger, metrics: MontanaMetrics = .shared) {
        self.configuration = configuration
        self.logger = logger
        obfs4 = configuration.obfs4.map { Obfs4Carrier(settings: $0, logger: logger) }
        webSocket = configuration.webSocket.map { WebSocketListener(settings: $0, logger: logger) }
        t1 = configuration.tls.map { T1Listener(settings: $0, logger: logger) }
        // Before the event loops exist: arenas are made as threads first contend.
        arenaCap = ProcessMemory.capArenas(configuration.limits.mallocArenas)
        group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        observer = NodeObserver(metrics: metrics)
        splicer = configuration.limits.kernelSplice ? KernelSplicer.make() : nil
        // Members (configured peers, by address) relay many users' circuits: exempt from the
        // per-prefix budgets, each with its own shares.
        admission = SourceAdmission(limits: configuration.admission,
                                    members: AdmissionSettings.memberAddresses(configuration.peers))
        if configuration.roles.contains(.exit) {
            let settings = configuration.exit ?? ExitSettings()
            var limits = EgressLimits()
            limits.streamsPerSession = configuration.limits.streamsPerSession
            limits.openTimeout = .seconds(Int64(configuration.limits.egressOpenTimeoutSeconds))
            limits.idleTimeout = .seconds(Int64(configuration.limits.egressIdleTimeoutSeconds))
            limits.connectAttemptsPerOpen = configuration.limits.connectAttemptsPerOpen
            limits.source = settings.egressSource
            limits.receiveBuffers = EgressReceiveBuffers(threshold: configuration.limits.egressSmallBuffersAfter)
            egressBuffers = limits.receiveBuffers
            let resolver = StubResolver(configuration: configuration.dns.resolverConfiguration())
            let budget = AccountBudget(sessionsPerAccount: configuration.limits.sessionsPerAccount,
                                       streamsPerAccount: configuration.limits.streamsPerAccount)
            let monitor = SelfAddressMonitor(addresses: SelfAddresses())
            let memberMonitor = SelfAddressMonitor(addresses: SelfAddresses())
            selfAddresses = monitor
            memberSelfAddresses = memberMonitor
            exit = ExitRuntime(node: configuration.nodeID, admission: settings.admission,
                               policy: ExitPolicy(configuration: settings.policy, selfAddresses: monitor.addresses),
                               memberPolicy: ExitPolicy(configuration: settings.policy, selfAddresses: memberMonitor.addresses,
                                                        memberEndpoints: memberEndpoints), limits: limits,
                               resolver: resolver, budget: budget)
        } else {
            selfAddresses = nil
            memberSelfAddresses = nil
            exit = nil
            egressBuffers = nil
        }
        // An exit holds sessions whose carrier broke until the client resumes them (PROTOCOL.md 5.3).
        var resumeLimits = ResumableSessions.Limits()
        resumeLimits.holdTime = .seconds(Int64(configuration.limits.resumeHoldSeconds))
        resumeLimits.maxDetached = configuration.limits.resumeDetachedMax
        resumeLimits.detachedBudget = configuration.limits.resumeBudgetMiB * 1_048_576
        resumable = exit != nil && configuration.limits.resumeHoldSeconds > 0 ? ResumableSessions(limits: resumeLimits) : nil
        if let settings = configuration.directory {
            do {
                directory = try NodeDirectory(settings: settings, configuration: configuration, loop: group.next(), logger: logger, metrics: metrics)
            } catch {
                logger.error("cannot open the directory store", metadata: ["file": "\(settings.databasePath)", "error": "\(error)"])
                directory = nil
            }
        } else {
            directory = nil
        }
        let config = configuration
        records = DirectoryRecords(identity: configuration.identity) { now in
            guard let country = config.country, let endpoint = config.listen.publicEndpoint else { return nil }
            let entry = try EgressDirectoryEntry(exitNodeID: config.nodeID.bytes, countryCode: country, capacityClass: config.capacity,
                                                 advertisedWindow: UInt32(truncatingIfNeeded: TimeWindow.window(unixSeconds: now)))
            return DirectoryRecord(entry: entry, identityPublicKey: config.identity.publicKey, kemPublicKey: config.kem.publicKey,
                                   roles: config.roles,
                                   endpoints: [Endpoint(profile: 0, host: endpoint.host, port: UInt16(endpoint.port))] + config.publishedCarriers.endpoints,
                                   issuedAt: now, expiresAt: now + DirectoryRecords.lifetime,
                                   keyMode: config.publishedCarriers.keyMode, ownT1: config.publishedCarriers.ownT1,
                                   operatorLabel: config.operatorLabel)
        }
    }

    /// The static members (`[[peers]]`) this node may relay to, besides the directory's.
    var members: [NodeID: AllianceMember] {
        Dictionary(configuration.peers.map { p in
            (p.nodeID, AllianceMember(nodeID: p.nodeID, kemPublicKey: p.kemPublicKey, host: p.endpoint.host, port: p.endpoint.port,
                                      country: p.country, roles: p.roles))
        }, uniquingKeysWith: { a, _ in a })
    }

    /// Starts listening. Returns the bound transit and admin ports (useful with port 0).
    public func start() async throws -> (transit: Int, admin: Int?) {
        // Every circuit, spliced relay and egress stream holds descriptors: use all the kernel allows.
        let descriptors = FileDescriptorBudget.raiseSoftLimitToHard()
        logger.info("\(descriptors)", metadata: ["fd_limit": "\(descriptors.after)", "fd_hard_limit": "\(descriptors.hard)"])
        if exit != nil {
            do {
                state.set(store: try AccountingStore(path: configuration.statePath))
            } catch {
                throw NodeStartError.state(configuration.statePath, "\(error)")
            }
            let state = self.state, observer = self.observer
            exit?.usage.withLockedValue { usage in
                usage = { account in
                    let stored = (try? state.store?.bytes(account: account)) ?? 0
                    return stored &+ observer.pendingBytes(account: account)
                }
            }
            // Totals reach the disk every 10 s and at shutdown.
            let flusher = group.next().scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { [weak self] _ in
                self?.flushAccounting()
            }
            state.set(flusher: flusher)
            // The exit must not reach itself: literals now, names and interfaces every 60 s off-loop.
            updateSelfAddresses(transitPort: configuration.listen.transit.port, adminPort: configuration.listen.admin?.port)
            selfAddresses?.start()
            memberSelfAddresses?.start()
        }
        if let settings = configuration.directory, directory == nil {
            throw NodeStartError.state(settings.databasePath, "cannot open the directory store")
        }
        let gate = SharedPrefaceGate(key: configuration.kem, capacity: configuration.admission.replayCapacity,
                                     alliance: configuration.alliance)
        let exit = self.exit
        let records = self.records
        let observer = self.observer
        let directory = self.directory
        let staticMembers = members
        let reachabilityMap = self.reachabilityMap
        directory?.reachability = reachabilityMap
        var router = NodeRouter(identity: configuration.identity, roles: configuration.roles,
                                members: { id in staticMembers[id] ?? directory?.member(id) },
                                exit: exit, services: { admission, channel in
                                    var list: [any StreamService] = [PingService(), IPEchoService(remote: { [weak channel] in channel?.remoteAddress })]
                                    let direct = (channel as? SessionChannel)?.directRemote.map { SourceGroup(address16: Array(IPEchoService.encode($0).prefix(16))) }
                                    list.append(ReachabilityService(map: reachabilityMap, source: direct, member: admission.member))
                                    if let directory {
                                        list.append(DirectoryFetchService(store: directory.store, waiters: directory.waiters))
                                        list.append(PeerExchangeService(directory: directory))
                                    } else {
                                        list.append(DirectoryService(records: records))
                                    }
                                    if let exit, let account = admission.account {
                                        let egressObserver: any EgressObserver = admission.member ? MemberEgressObserver(metrics: observer.metrics) : observer
                                        list.append(exit.egressService(account: account, member: admission.member, channel: channel, observer: egressObserver))
                                        list.append(AccountStatusService(account: account, usage: exit.usage.withLockedValue { $0 }))
                                    }
                                    return list
                                }, observer: observer, logger: logger)
        router.windowBudget = SharedBudget(capacity: UInt64(configuration.limits.windowBudgetMiB) * 1_048_576)
        let resumable = self.resumable
        router.resumes = resumable != nil
        let routerForAccepts = router
        let admission = self.admission
        let alliance = configuration.alliance
        let splicer = self.splicer
        let relaySource: SocketAddress? = configuration.listen.transit.isWildcard ? nil
            : try? SocketAddress(ipAddress: configuration.listen.transit.host, port: 0)
        // `spliceable`: the carrier is the socket itself (T0, T3), so bulk circuits may move to
        // the kernel relay; T2's bytes are inside WebSocket frames (and TLS), never spliced.
        let makeAccept: @Sendable (SocketAddress?, Bool, Bool) -> PrefaceAcceptHandler = { remote, viaHelper, spliceable in
            PrefaceAcceptHandler(gate: gate, admission: admission, router: routerForAccepts, observer: observer, alliance: alliance,
                                 relaySource: relaySource, resumable: resumable, remote: remote, viaHelper: viaHelper,
                                 splicer: spliceable ? splicer : nil)
        }
        // T3 first: its endpoint (the bridge cert) goes into the record the directory publishes.
        if let obfs4 {
            let host = configuration.listen.publicHost ?? (configuration.obfs4!.listen.isWildcard ? "127.0.0.1" : configuration.obfs4!.listen.host)
            let endpoint = try await obfs4.start(group: group, publicHost: host) { remote in makeAccept(remote, true, true) }
            configuration.publishedCarriers.set(endpoint)
        }
        if let webSocket {
            let listen = configuration.webSocket!.listen
            let host = configuration.listen.publicHost ?? (listen.isWildcard ? "127.0.0.1" : listen.host)
            let endpoint = try await webSocket.start(group: group, defaultHost: host) { remote, viaProxy in makeAccept(remote, viaProxy, false) }
            configuration.publishedCarriers.set(endpoint)
        }
        if let t1 {
            let listen = configuration.tls!.listen
            let host = configuration.listen.publicHost ?? (listen.isWildcard ? "127.0.0.1" : listen.host)
            // T1's bytes are inside T1 frames: the circuit itself is never spliced in the kernel
            // (connections that stay with the cover are).
            let endpoint = try await t1.start(group: group, defaultHost: host, psk: configuration.alliance ?? [],
                                              defaultShortID: Array(configuration.nodeID.bytes.prefix(8)),
                                              universal: configuration.directory?.alliance.universalT1,
                                              published: configuration.publishedCarriers, splicer: splicer) {
                makeAccept(nil, false, false)
            }
            configuration.publishedCarriers.set(endpoint)
        }
        let t0Accepted = self.t0Accepted
        let server = try await ServerBootstrap.carrierListener(group: group)
            .childChannelInitializer { channel in
                // Admission (circuit caps, preface and handshake budgets per source prefix) is the
                // accept handler's: over a cap a connection is discarded silently, never closed here.
                channel.eventLoop.makeCompletedFuture {
                    t0Accepted.withLockedValue { $0 += 1 }
                    try channel.pipeline.syncOperations.addHandler(makeAccept(nil, false, true))
                }
            }
            .bind(host: configuration.listen.transit.host, port: configuration.listen.transit.port)
            .get()
        state.set(server: server)
        var adminPort: Int?
        if let admin = configuration.listen.admin {
            var documents: [String: AdminServer.StatusProvider] = [:]
            if let directory {
                let alliance = directory.settings.alliance
                documents["/directory"] = { DirectoryView.document(store: directory.store, alliance: alliance) }
            }
            documents["/reachability"] = { ReachabilityView.document(reachabilityMap) }
            let server = AdminServer(address: admin, metrics: observer.metrics, group: group, status: { [weak self] in self?.status() ?? [:] },
                                     documents: documents)
            adminPort = try await server.start()
            state.set(admin: server)
        }
        let transitPort = server.localAddress?.port ?? configuration.listen.transit.port
        updateSelfAddresses(transitPort: transitPort, adminPort: adminPort)
        // Members come and go: their transit endpoints join the exit's self-denials (users'
        // sessions) and the member exemptions (members' sessions, admission) as they do.
        let boundAdmin = adminPort
        directory?.onMembersChanged = { [weak self] in
            self?.updateSelfAddresses(transitPort: transitPort, adminPort: boundAdmin)
            self?.updateMemberAdmission()
        }
        directory?.start()
        logger.info("node started", metadata: [
            "node_id": "\(configuration.nodeID.hex)",
            "roles": "\(describe(configuration.roles))",
            "country": "\(configuration.country ?? "-")",
            "transit": "\(configuration.listen.transit.host):\(transitPort)",
            "admin": "\(adminPort.map { "\(configuration.listen.admin!.host):\($0)" } ?? "off")",
            "exit_admission": "\(exit?.admissionLabel ?? "-")",
        ])
        return (transitPort, adminPort)
    }

    /// Machine-readable status for /status (node-level facts only; nothing per user).
    public func status() -> [String: any Sendable] {
        var status: [String: any Sendable] = [
            "node_id": configuration.nodeID.hex,
            "roles": describe(configuration.roles),
            "country": configuration.country ?? "",
            "circuits_active": admission.activeCircuits,
            "discarders_active": admission.activeDiscarders,
            "peers": configuration.peers.count,
        ]
        if let splicer { status["kernel_spliced_circuits"] = splicer.activePairs }
        status["memory"] = Self.memoryStatus(arenaCap: arenaCap, trims: heapTrimmer.trims)
        if let egressBuffers {
            status["egress_connections"] = ["open": egressBuffers.openConnections,
                                            "small_buffers_after": egressBuffers.threshold,
                                            "next_buffer_max_bytes": egressBuffers.maximumForNextConnection] as [String: any Sendable]
        }
        var carriers: [String: any Sendable] = ["t0": ["connections": t0Accepted.withLockedValue { $0 }] as [String: any Sendable]]
        if let obfs4 { carriers["t3"] = obfs4.status() }
        if let webSocket { carriers["t2"] = webSocket.status() }
        if let t1 { carriers["t1"] = t1.status() }
        status["carriers"] = carriers
        if let resumable {
            let c = resumable.counts
            status["resumption"] = ["hold_seconds": configuration.limits.resumeHoldSeconds, "resumable_sessions": c.registered,
                                    "detached": c.detached, "detached_bytes": c.detachedBytes, "resumed": c.resumed,
                                    "refused": c.refused, "evicted": c.evicted] as [String: any Sendable]
        }
        if let directory {
            let now = WallClock.now()
            let live = directory.store.members(now: now)
            status["directory"] = ["alliance": directory.settings.alliance.name, "members": live.count,
                                   "exits": live.filter { $0.roles.contains(.exit) }.count,
                                   "corroborated_exits": live.filter { $0.corroboration.state == .corroborated }.count,
                                   "records": directory.store.recordCount, "attestations": directory.store.attestationCount,
                                   "withdrawn": directory.isWithdrawn] as [String: any Sendable]
        }
        if let store = state.store, let stored = try? store.summary() {
            var totals = stored.totals
            totals.add(observer.pendingTotals)
            status["egress"] = ["accounts": stored.accounts, "bytes_up": totals.bytesUp, "bytes_down": totals.bytesDown,
                                "streams": totals.streams, "refusals": totals.refusals] as [String: any Sendable]
        }
        return status
    }

    /// The process's heap (glibc mallinfo2) and how its arenas were capped.
    static func memoryStatus(arenaCap: ProcessMemory.ArenaCap, trims: Int) -> [String: any Sendable] {
        var memory: [String: any Sendable] = ["trims": trims]
        switch arenaCap {
        case .applied(let n): memory["malloc_arenas"] = "\(n)"
        case .environment: memory["malloc_arenas"] = "environment"
        case .unsupported, .off: memory["malloc_arenas"] = "default"
        }
        if let heap = ProcessMemory.heap() {
            memory["heap_in_use_bytes"] = Int(clamping: heap.inUseBytes)
            memory["heap_arena_bytes"] = Int(clamping: heap.arenaBytes)
            memory["heap_mmapped_bytes"] = Int(clamping: heap.mmappedBytes)
            memory["heap_free_in_arenas_bytes"] = Int(clamping: heap.freeInArenasBytes)
        }
        return memory
    }

    /// Writes the per-account deltas gathered since the last flush.
    func flushAccounting() {
        guard let store = state.store else { return }
        let deltas = observer.takeDeltas()
        defer { observer.flushed() }
        do {
            try store.add(deltas)
            // Keep the table bounded: idle accounts and rows beyond the cap fold into the rollup.
            let folded = try store.prune(idleDays: configuration.limits.accountingIdleDays,
                                         maxRows: configuration.limits.accountingMaxRows)
            if folded.total > 0 {
                logger.info("folded accounting rows into the rollup", metadata: ["idle": "\(folded.idle)", "over_cap": "\(folded.overCap)"])
            }
        } catch {
            logger.error("cannot write accounting totals", metadata: ["file": "\(store.path)", "error": "\(error)"])
        }
    }

    /// Stops accepting, closes what is open, and releases the threads.
    public func stop() async {
        directory?.stop()
        await obfs4?.stop()
        await webSocket?.stop()
        await t1?.stop()
        if let server = state.server { try? await server.close() }
        if let admin = state.admin { try? await admin.stop() }
        state.flusher?.cancel()
        selfAddresses?.stop()
        memberSelfAddresses?.stop()
        flushAccounting()
        splicer?.shutdown()
        heapTrimmer.stop()
        try? await group.shutdownGracefully()
        logger.info("node stopped")
    }
}

extension Node {
    /// What the exit denies as itself: public_host and a specific transit host on every port;
    /// the admin and transit listeners and every member's transit endpoint on their ports.
    /// Live directory members' transit hosts get member shares in admission (they relay and gossip).
    func updateMemberAdmission() {
        guard let directory else { return }
        let me = configuration.nodeID
        var hosts = Set<SourceAddress>()
        for m in directory.store.members(now: WallClock.now()) where m.nodeID != me {
            for e in m.record.endpoints { if let a = SourceAddress(e.host) { hosts.insert(a) } }
        }
        admission.setMembers(hosts)
    }

    /// Both monitors: the full list for users' sessions, without members for members' sessions.
    func updateSelfAddresses(transitPort: Int, adminPort: Int?) {
        let own = selfAddressSources(transitPort: transitPort, adminPort: adminPort, includeMembers: false)
        memberSelfAddresses?.update(own)
        var all = selfAddressSources(transitPort: transitPort, adminPort: adminPort)
        var members: [(host: String, port: UInt16)] = configuration.peers.compactMap { p in
            UInt16(exactly: p.endpoint.port).map { (p.endpoint.host, $0) }
        }
        if let directory {
            let me = configuration.nodeID
            for m in directory.store.members(now: WallClock.now()) where m.nodeID != me {
                for e in m.record.endpoints {
                    all.endpoints.append(.init(host: e.host, port: Int(e.port)))
                    members.append((e.host, e.port))
                }
            }
        }
        selfAddresses?.update(all)
        memberEndpoints.set(members)
    }

    func selfAddressSources(transitPort: Int, adminPort: Int?, includeMembers: Bool = true) -> SelfAddressSources {
        let listen = configuration.listen
        var sources = SelfAddressSources()
        sources.hosts = [listen.publicHost, listen.transit.isWildcard ? nil : listen.transit.host].compactMap { $0 }
        sources.endpoints.append(.init(host: listen.transit.host, port: transitPort))
        if let publicHost = listen.publicHost { sources.endpoints.append(.init(host: publicHost, port: transitPort)) }
        if let admin = listen.admin, let adminPort { sources.endpoints.append(.init(host: admin.host, port: adminPort)) }
        if includeMembers {
            sources.endpoints += configuration.peers.map { .init(host: $0.endpoint.host, port: $0.endpoint.port) }
        }
        return sources
    }
}

func describe(_ roles: NodeRoles) -> String {
    roles.names.joined(separator: "+")
}

/// What a running node holds, set once at start.
final class RunningNodeState: Sendable {
    private struct Held {
        var server: (any Channel)?
        var admin: AdminServer?
        var store: AccountingStore?
        var flusher: RepeatedTask?
    }

    private let box = NIOLockedValueBox(Held())
    func set(server: any Channel) { box.withLockedValue { $0.server = server } }
    func set(admin: AdminServer) { box.withLockedValue { $0.admin = admin } }
    func set(store: AccountingStore) { box.withLockedValue { $0.store = store } }
    func set(flusher: RepeatedTask) { box.withLockedValue { $0.flusher = flusher } }
    var server: (any Channel)? { box.withLockedValue { $0.server } }
    var admin: AdminServer? { box.withLockedValue { $0.admin } }
    var store: AccountingStore? { box.withLockedValue { $0.store } }
    var flusher: RepeatedTask? { box.withLockedValue { $0.flusher } }
}

public enum NodeStartError: Error, CustomStringConvertible {
    case state(String, String)

    public var description: String {
        switch self {
        case .state(let path, let why): return "\(path): cannot open the accounting database (node.state): \(why)"
        }
    }
}
