import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Why a name did not resolve. `busy` is the exit's own limit (the open gets status 3, rate
/// limited); every other case means the destination is unreachable (status 2).
public enum DNSResolveError: Error, Equatable, CustomStringConvertible {
    /// Not a DNS name (empty label, label over 63 bytes, over 255 bytes).
    case invalidName
    /// NXDOMAIN for both A and AAAA.
    case noSuchName
    /// The name exists but has no A or AAAA record (NODATA).
    case noAddress
    /// No answer before the lookup's deadline.
    case timedOut
    /// Every server answered SERVFAIL/REFUSED/truncated/malformed, or no server could be asked.
    case serverFailure
    /// The node-wide limit on lookups in flight (`[dns] max_inflight`) is reached.
    case busy

    public var description: String {
        switch self {
        case .invalidName: return "not a DNS name"
        case .noSuchName: return "no such name"
        case .noAddress: return "no address for the name"
        case .timedOut: return "DNS lookup timed out"
        case .serverFailure: return "DNS servers failed"
        case .busy: return "too many DNS lookups in flight"
        }
    }
}

/// The resolver's settings (`[dns]` in node.toml).
public struct StubResolverConfiguration: Sendable {
    /// Recursive resolvers asked in turn (UDP).
    public var servers: [SocketAddress]
    /// Deadline of one lookup, from the EgressOpen to the answer (`[dns] timeout_ms`).
    public var timeout = TimeAmount.milliseconds(5000)
    /// Lookups sent to the network at once, node-wide (`[dns] max_inflight`); beyond → `busy`.
    public var maxInflight = 256
    /// Lookups in flight per session (`[dns] max_per_session`); more wait in the session's queue.
    public var maxPerSession = 8
    /// Cache entries, one per (name, type) (`[dns] cache_entries`).
    public var cacheEntries = 10_000
    /// TTL clamp in seconds (`[dns] min_ttl_seconds`, `max_ttl_seconds`), for positive and negative answers.
    public var minTTL: UInt32 = 5
    public var maxTTL: UInt32 = 3600
    /// Negative answers without an SOA are cached this long (RFC 2308 leaves it to the resolver).
    public var negativeTTL: UInt32 = 30
    /// Names answered from the hosts file instead of DNS.
    public var hosts = HostsFile()

    public init(servers: [SocketAddress]) {
        self.servers = servers
    }

    /// Servers from /etc/resolv.conf and names from /etc/hosts: what a node uses without `[dns]`.
    public static func system() -> StubResolverConfiguration {
        var c = StubResolverConfiguration(servers: ResolvConf.defaultServers())
        c.hosts = HostsFile.load(path: "/etc/hosts")
        return c
    }

    func clamp(_ ttl: UInt32) -> UInt32 { min(max(ttl, minTTL), maxTTL) }
}

/// A non-blocking stub resolver on the caller's event loop: A and AAAA over UDP from a random
/// source port with random 16-bit ids, answers matched by source, id and question, CNAME chains
/// followed within the answer, a cache honouring TTLs, a hard deadline per lookup and a
/// node-wide cap on lookups in flight. Nothing runs on a shared thread pool, so a zone whose
/// servers never answer costs one socket per family per lookup until its deadline and nothing else.
///
/// A truncated (TC) answer is treated as a failure of that server, not retried over TCP: queries
/// advertise a 4096-byte EDNS(0) buffer, so only answers larger than the resolver would parse
/// anyway come back truncated.
public final class StubResolver: Sendable {
    public let configuration: StubResolverConfiguration
    public let cache: DNSCache
    private let inflight = NIOLockedValueBox(0)

    /// RFC 8305 §3 "Resolution Delay": once one family answered with addresses, the other gets
    /// this long before the lookup completes without it (it still fills the cache later).
    static let resolutionDelay = TimeAmount.milliseconds(50)
    /// Shortest pause between retransmissions (each goes to the next server): 100 ms keeps a
    /// short `timeout_ms` (tests use 1000) from turning into a burst.
    static let minRetransmitInterval = TimeAmount.milliseconds(100)

    public init(configuration: StubResolverConfiguration) {
        self.configuration = configuration
        cache = DNSCache(capacity: configuration.cacheEntries)
    }

    /// Lookups currently on the network, node-wide.
    public var lookupsInFlight: Int { inflight.withLockedValue { $0 } }

    static func key(_ labels: [[UInt8]]) -> String {
        labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
    }

    /// The answer when no server needs to be asked (not a DNS name, the hosts file, or both
    /// types cached), else nil. Lets callers skip their queue for names already known.
    public func answerWithoutNetwork(_ name: String) -> Result<[[UInt8]], any Error>? {
        guard let labels = DNSMessage.labels(of: name) else { return .failure(DNSResolveError.invalidName) }
        let key = Self.key(labels)
        if let listed = configuration.hosts.lookup(key) { return .success(listed) }
        let known = cached(key)
        return known.count == DNSLookup.types.count ? DNSLookup.combine(known, timedOut: false) : nil
    }

    private func cached(_ key: String) -> [DNSRecordType: DNSLookup.Outcome] {
        var known: [DNSRecordType: DNSLookup.Outcome] = [:]
        for type in DNSLookup.types {
            if let cached = cache.get(DNSCache.Key(name: key, type: type)) { known[type] = DNSLookup.Outcome(cached) }
        }
        return known
    }

    /// Every address of `name` (AAAA first, then A), or a `DNSResolveError`, by `deadline` at the latest.
    public func resolve(_ name: String, deadline: NIODeadline, on loop: any EventLoop) -> EventLoopFuture<[[UInt8]]> {
        guard let labels = DNSMessage.labels(of: name) else { return loop.makeFailedFuture(DNSResolveError.invalidName) }
        let key = Self.key(labels)
        if let listed = configuration.hosts.lookup(key) { return loop.makeSucceededFuture(listed) }
        let known = cached(key)
        if known.count == DNSLookup.types.count {
            return loop.makeCompletedFuture(DNSLookup.combine(known, timedOut: false))
        }
        guard !configuration.servers.isEmpty else { return loop.makeFailedFuture(DNSResolveError.serverFailure) }
        guard acquire() else { return loop.makeFailedFuture(DNSResolveError.busy) }
        let missing = DNSLookup.types.filter { known[$0] == nil }
        if loop.inEventLoop {
            return DNSLookup(resolver: self, loop: loop, labels: labels, key: key, types: missing, known: known, deadline: deadline).start()
        }
        return loop.flatSubmit { [self] in
            DNSLookup(resolver: self, loop: loop, labels: labels, key: key, types: missing, known: known, deadline: deadline).start()
        }
    }

    private func acquire() -> Bool {
        inflight.withLockedValue { n in
            guard n < configuration.maxInflight else { return false }
            n += 1
            return true
        }
    }

    func release() {
        inflight.withLockedValue { $0 = max(0, $0 - 1) }
    }
}

/// One lookup (A and AAAA for one name) on one event loop.
final class DNSLookup {
    static let types: [DNSRecordType] = [.aaaa, .a]

    enum Outcome: Equatable {
        case addresses([[UInt8]])
        case negative(nameExists: Bool)
        case failure

        init(_ cached: DNSCache.Value) {
            switch cached {
            case .addresses(let list): self = .addresses(list)
            case .negative(let exists): self = .negative(nameExists: exists)
            }
        }
    }

    struct Query {
        let type: DNSRecordType
        let id: UInt16
        let message: [UInt8]
        var outcome: Outcome?
        var failedServers = Set<Int>()
    }

    private let resolver: StubResolver
    private let loop: any EventLoop
    private let labels: [[UInt8]]
    private let key: String
    private let deadline: NIODeadline
    private var known: [DNSRecordType: Outcome]
    private var queries: [Query] = []
    private var channels: [Bool: any Channel] = [:]
    private let promise: EventLoopPromise<[[UInt8]]>
    private var answered = false
    private var finished = false
    private var round = 0
    private var deadlineTask: Scheduled<Void>?
    private var retransmitTask: Scheduled<Void>?
    private var partialTask: Scheduled<Void>?

    private var servers: [SocketAddress] { resolver.configuration.servers }

    init(resolver: StubResolver, loop: any EventLoop, labels: [[UInt8]], key: String, types: [DNSRecordType],
         known: [DNSRecordType: Outcome], deadline: NIODeadline) {
        self.resolver = resolver
        self.loop = loop
        self.labels = labels
        self.key = key
        self.known = known
        self.deadline = deadline
        promise = loop.makePromise()
        var ids = Set<UInt16>()
        for type in types {
            var id = UInt16.random(in: .min ... .max)
            while !ids.insert(id).inserted { id = UInt16.random(in: .min ... .max) }
            queries.append(Query(type: type, id: id, message: DNSMessage.query(id: id, labels: labels, type: type)))
        }
    }

    func start() -> EventLoopFuture<[[UInt8]]> {
        let future = promise.futureResult
        deadlineTask = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in finish() }
        let families = Set(servers.map { $0.protocol == .inet6 })
        var pendingBinds = families.count
        for v6 in families {
            let handler = DNSDatagramHandler()
            handler.lookup = self
            let boxed = NIOLoopBound(handler, eventLoop: loop)
            DatagramBootstrap(group: loop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: DNSMessage.maxResponseSize + 1))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(boxed.value) }
                }
                .bind(host: v6 ? "::" : "0.0.0.0", port: 0)
                .assumeIsolated()
                .whenComplete { [self] result in
                    pendingBinds -= 1
                    if case .success(let channel) = result {
                        if finished { channel.close(promise: nil) } else { channels[v6] = channel }
                    }
                    guard pendingBinds == 0, !finished else { return }
                    if channels.isEmpty {
                        for i in queries.indices { queries[i].outcome = .failure }
                        settle()
                    } else {
                        sendRound()
                    }
                }
        }
        return future
    }

    private var retransmitInterval: TimeAmount {
        let spread = resolver.configuration.timeout.nanoseconds / Int64(max(1, 2 * servers.count))
        return .nanoseconds(max(StubResolver.minRetransmitInterval.nanoseconds, spread))
    }

    /// Sends every unanswered query to the next server that has not failed it; then schedules the next round.
    private func sendRound() {
        guard !finished else { return }
        for i in queries.indices where queries[i].outcome == nil { send(i) }
        round += 1
        retransmitTask = loop.assumeIsolated().scheduleTask(in: retransmitInterval) { [self] in sendRound() }
    }

    private func send(_ index: Int) {
        let candidates = servers.indices.filter { !queries[index].failedServers.contains($0) }
        guard !candidates.isEmpty else { return }
        let server = servers[candidates[round % candidates.count]]
        guard let channel = channels[server.protocol == .inet6] else { return }
        let envelope = AddressedEnvelope(remoteAddress: server, data: ByteBuffer(bytes: queries[index].message))
        channel.writeAndFlush(envelope, promise: nil)
    }

    /// A datagram on one of the lookup's sockets: only from a configured server, only if it
    /// matches an unanswered query's id and question.
    func received(_ buffer: ByteBuffer, from source: SocketAddress) {
        guard !finished, buffer.readableBytes <= DNSMessage.maxResponseSize,
              let serverIndex = servers.firstIndex(of: source) else { return }
        let bytes = Array(buffer.readableBytesView)
        guard let header = DNSMessage.header(bytes),
              let index = queries.firstIndex(where: { $0.id == header.id && $0.outcome == nil }) else { return }
        let query = queries[index]
        let cacheKey = DNSCache.Key(name: key, type: query.type)
        let configuration = resolver.configuration
        do {
            switch try DNSMessage.parseResponse(bytes, id: query.id, labels: labels, type: query.type) {
            case .addresses(let list, let ttl):
                queries[index].outcome = .addresses(list)
                resolver.cache.put(cacheKey, .addresses(list), ttlSeconds: configuration.clamp(ttl))
            case .negative(let exists, let ttl):
                queries[index].outcome = .negative(nameExists: exists)
                resolver.cache.put(cacheKey, .negative(nameExists: exists), ttlSeconds: configuration.clamp(ttl ?? configuration.negativeTTL))
            }
        } catch .mismatch {
            return // not an answer to this question (spoofed or late): keep waiting
        } catch {
            // This server cannot answer it: ask another at once, or give up if all failed.
            queries[index].failedServers.insert(serverIndex)
            if queries[index].failedServers.count >= servers.count {
                queries[index].outcome = .failure
            } else {
                send(index)
            }
        }
        settle()
    }

    private func settle() {
        guard !finished else { return }
        if queries.allSatisfy({ $0.outcome != nil }) {
            finish()
            return
        }
        let hasAddresses = queries.contains { if case .addresses = $0.outcome { return true } else { return false } }
            || known.values.contains { if case .addresses = $0 { return true } else { return false } }
        if hasAddresses, !answered, partialTask == nil {
            partialTask = loop.assumeIsolated().scheduleTask(in: StubResolver.resolutionDelay) { [self] in answer(timedOut: false) }
        }
    }

    private func outcomes() -> [DNSRecordType: Outcome] {
        var all = known
        for q in queries { if let o = q.outcome { all[q.type] = o } }
        return all
    }

    private func answer(timedOut: Bool) {
        guard !answered else { return }
        answered = true
        promise.completeWith(Self.combine(outcomes(), timedOut: timedOut))
    }

    /// The lookup is over (all answered, or the deadline): sockets closed, the slot given back.
    private func finish() {
        guard !finished else { return }
        finished = true
        answer(timedOut: !queries.allSatisfy { $0.outcome != nil })
        deadlineTask?.cancel()
        retransmitTask?.cancel()
        partialTask?.cancel()
        for channel in channels.values { channel.close(promise: nil) }
        channels = [:]
        resolver.release()
    }

    static func combine(_ outcomes: [DNSRecordType: Outcome], timedOut: Bool) -> Result<[[UInt8]], any Error> {
        var addresses: [[UInt8]] = []
        for type in types {
            if case .addresses(let list)? = outcomes[type] { addresses += list }
        }
        if !addresses.isEmpty { return .success(addresses) }
        let negatives = types.compactMap { type -> Bool? in
            if case .negative(let exists)? = outcomes[type] { return exists }
            return nil
        }
        if negatives.count == types.count {
            return .failure(negatives.contains(true) ? DNSResolveError.noAddress : DNSResolveError.noSuchName)
        }
        return .failure(timedOut ? DNSResolveError.timedOut : DNSResolveError.serverFailure)
    }
}

/// Delivers datagrams on a lookup's socket to the lookup.
final class DNSDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    var lookup: DNSLookup?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        lookup?.received(envelope.data, from: envelope.remoteAddress)
    }

    func channelInactive(context: ChannelHandlerContext) {
        lookup = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like: the retransmission to the next server covers it.
    }
}
