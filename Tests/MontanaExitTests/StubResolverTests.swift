import Foundation
import NIOCore
import NIOPosix
import XCTest
@testable import MontanaExit

/// The exit's stub resolver against a real UDP DNS server on loopback.
final class StubResolverTests: XCTestCase {
    /// Bound on waiting for any one lookup in these tests: longer than every deadline used here
    /// (at most 1 s), so a lookup that outlives it is a bug, not a slow machine.
    private let lookupWaitLimit: TimeInterval = 10
    /// Deadline for lookups that are expected to hang: short so the tests run in well under a second each.
    private let shortTimeout = TimeAmount.milliseconds(300)
    /// Slack on "fails at the deadline": a loaded 2-core CI machine may schedule the timer late.
    private let deadlineSlack: TimeInterval = 1.0

    private var group: MultiThreadedEventLoopGroup!
    private var servers: [TestDNSServer] = []

    override func setUp() {
        super.setUp()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        for s in servers { s.stop() }
        servers = []
        try? group.syncShutdownGracefully()
        super.tearDown()
    }

    private func server(_ behaviour: @escaping @Sendable (TestDNSServer.Question) -> TestDNSServer.Reply) throws -> TestDNSServer {
        let s = try TestDNSServer(group: group, behaviour: behaviour)
        servers.append(s)
        return s
    }

    private func resolver(_ server: TestDNSServer, timeout: TimeAmount = .seconds(2), configure: (inout StubResolverConfiguration) -> Void = { _ in })
        -> StubResolver {
        var c = StubResolverConfiguration(servers: [server.address])
        c.timeout = timeout
        configure(&c)
        return StubResolver(configuration: c)
    }

    private func lookup(_ resolver: StubResolver, _ name: String) -> (Result<[[UInt8]], any Error>, TimeInterval) {
        wait(resolver.resolve(name, deadline: .now() + resolver.configuration.timeout, on: group.next()))
    }

    /// The future's result, waited for at most `lookupWaitLimit`.
    private func wait(_ future: EventLoopFuture<[[UInt8]]>) -> (Result<[[UInt8]], any Error>, TimeInterval) {
        let start = Date()
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResultBox()
        future.whenComplete { result in
            box.set(result)
            semaphore.signal()
        }
        guard semaphore.wait(timeout: .now() + lookupWaitLimit) == .success, let result = box.get() else {
            return (.failure(E("no result within \(lookupWaitLimit) s")), Date().timeIntervalSince(start))
        }
        return (result, Date().timeIntervalSince(start))
    }

    private func error(_ result: Result<[[UInt8]], any Error>) -> DNSResolveError? {
        if case .failure(let e) = result { return e as? DNSResolveError }
        return nil
    }

    static let v4: [UInt8] = [192, 0, 2, 7]
    static let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [7]

    /// NODATA for the other type: NOERROR, no answers, the zone's SOA in the authority section.
    static func nodata(_ zone: String = "example.test", ttl: UInt32 = 60) -> TestDNSServer.Reply {
        .answer(rcode: 0, answers: [], authority: [TestDNSServer.soa(zone: zone, ttl: ttl, minimum: ttl)])
    }

    func test_resolvesAAndAAAARecordsFromTheConfiguredServer() throws {
        let dns = try server { q in
            q.type == 1 ? .answer(rcode: 0, answers: [TestDNSServer.a(q.name, Self.v4)], authority: [])
                : .answer(rcode: 0, answers: [TestDNSServer.aaaa(q.name, Self.v6)], authority: [])
        }
        let (result, _) = lookup(resolver(dns), "WWW.Example.test.")
        XCTAssertEqual(try result.get(), [Self.v6, Self.v4], "AAAA first, then A; the name is case-insensitive with an optional trailing dot")
        XCTAssertEqual(Set(dns.questions.map(\.type)), [1, 28], "one A and one AAAA query")
        XCTAssertEqual(Set(dns.questions.map(\.name)), ["www.example.test"])
        XCTAssertNotEqual(dns.questions[0].id, dns.questions[1].id, "the two queries carry different ids")
    }

    func test_queryIdsAreRandom() throws {
        let dns = try server { q in .answer(rcode: 3, answers: [], authority: []) }
        let r = resolver(dns) { $0.cacheEntries = 0 }
        for i in 0..<16 { _ = lookup(r, "n\(i).example.test") }
        let ids = Set(dns.questions.map(\.id))
        // 32 random 16-bit ids: a collision has probability < 1 %, a counter or constant would fail.
        XCTAssertGreaterThanOrEqual(ids.count, 31, "ids: \(dns.questions.map(\.id))")
    }

    func test_followsACNAMEChainWithinTheAnswer() throws {
        let dns = try server { q in
            // The chain out of order, with an unrelated record mixed in.
            let chain = [TestDNSServer.cname("mid.example.test", "real.example.test"),
                         TestDNSServer.a("unrelated.example.test", [198, 51, 100, 1]),
                         TestDNSServer.cname("alias.example.test", "mid.example.test")]
            if q.type == 1 {
                return .answer(rcode: 0, answers: [TestDNSServer.a("real.example.test", [192, 0, 2, 9])] + chain, authority: [])
            }
            return .answer(rcode: 0, answers: chain, authority: [TestDNSServer.soa(zone: "example.test", ttl: 60, minimum: 60)])
        }
        let (result, _) = lookup(resolver(dns), "alias.example.test")
        XCTAssertEqual(try result.get(), [[192, 0, 2, 9]], "the address at the end of the chain, nothing else")
    }

    func test_nxdomainFailsAtOnceAndIsCachedNegatively() throws {
        let dns = try server { _ in .answer(rcode: 3, answers: [], authority: [TestDNSServer.soa(zone: "example.test", ttl: 60, minimum: 60)]) }
        let r = resolver(dns)
        let (first, elapsed) = lookup(r, "missing.example.test")
        XCTAssertEqual(error(first), .noSuchName)
        XCTAssertLessThan(elapsed, 1, "NXDOMAIN answers at once")
        let asked = dns.questions.count
        XCTAssertEqual(asked, 2)
        guard case .failure(let cached)? = r.answerWithoutNetwork("missing.example.test") else {
            return XCTFail("a cached name is answered without the network (and so without queueing)")
        }
        XCTAssertEqual(cached as? DNSResolveError, .noSuchName)
        XCTAssertNil(r.answerWithoutNetwork("unknown.example.test"), "an unknown name needs the network")
        XCTAssertEqual(error(lookup(r, "missing.example.test").0), .noSuchName)
        XCTAssertEqual(dns.questions.count, asked, "the negative answer comes from the cache")
    }

    func test_nodataForBothTypesIsNoAddress() throws {
        let dns = try server { _ in Self.nodata() }
        XCTAssertEqual(error(lookup(resolver(dns), "mail.example.test").0), .noAddress)
    }

    func test_answersExpireWithTheirTTL() throws {
        let dns = try server { q in
            q.type == 1 ? .answer(rcode: 0, answers: [TestDNSServer.a(q.name, Self.v4, ttl: 1)], authority: []) : Self.nodata(ttl: 1)
        }
        let r = resolver(dns) { $0.minTTL = 1 }
        XCTAssertEqual(try lookup(r, "short.example.test").0.get(), [Self.v4])
        XCTAssertEqual(dns.questions.count, 2)
        XCTAssertEqual(try lookup(r, "short.example.test").0.get(), [Self.v4])
        XCTAssertEqual(dns.questions.count, 2, "within the TTL both types come from the cache")
        Thread.sleep(forTimeInterval: 1.3)
        XCTAssertEqual(try lookup(r, "short.example.test").0.get(), [Self.v4])
        XCTAssertEqual(dns.questions.count, 4, "after the TTL both types are asked again")
    }

    func test_tinyTTLsAreRaisedToTheMinimum() throws {
        let dns = try server { q in
            q.type == 1 ? .answer(rcode: 0, answers: [TestDNSServer.a(q.name, Self.v4, ttl: 0)], authority: []) : Self.nodata(ttl: 0)
        }
        let r = resolver(dns) { $0.minTTL = 5 }
        _ = lookup(r, "zero.example.test")
        Thread.sleep(forTimeInterval: 0.3)
        _ = lookup(r, "zero.example.test")
        XCTAssertEqual(dns.questions.count, 2, "a TTL of 0 is cached for min_ttl (5 s), not re-asked every time")
    }

    func test_swallowedQueriesFailAtTheDeadlineAndFreeTheSlot() throws {
        let dns = try server { q in
            q.name.hasPrefix("hang") ? .none : .answer(rcode: 0, answers: q.type == 1 ? [TestDNSServer.a(q.name, Self.v4)] : [], authority: [])
        }
        let r = resolver(dns, timeout: shortTimeout) { $0.maxInflight = 1 }
        let loop = group.next()
        let hung = r.resolve("hang.example.test", deadline: .now() + shortTimeout, on: loop)
        let start = Date()
        // The only node-wide slot is taken: the next lookup is refused at once, not queued behind it.
        XCTAssertEqual(error(lookup(r, "other.example.test").0), .busy)
        XCTAssertEqual(r.lookupsInFlight, 1)
        let outcome = wait(hung).0
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(error(outcome), .timedOut)
        XCTAssertLessThan(elapsed, 0.3 + deadlineSlack, "the lookup ends at its deadline")
        XCTAssertGreaterThanOrEqual(elapsed, 0.25, "not before it")
        XCTAssertTrue(poll(2) { r.lookupsInFlight == 0 }, "the slot is given back")
        XCTAssertEqual(try lookup(r, "other.example.test").0.get(), [Self.v4], "after the deadline the next name resolves")
        // 300 ms with retransmissions every 150 ms at most: a handful of queries per type, no storm.
        XCTAssertLessThanOrEqual(dns.count(name: "hang.example.test"), 8, "retransmissions are bounded")
        XCTAssertGreaterThanOrEqual(dns.count(name: "hang.example.test"), 2, "both types were asked")
    }

    func test_malformedAnswersFailWithoutTrapping() throws {
        let dns = try server { q in
            let header = TestDNSServer.u16(q.id)
            switch q.name.split(separator: ".").first ?? "" {
            case "badlen": // an A record with 5 bytes of data
                return .answer(rcode: 0, answers: [TestDNSServer.Record(name: q.name, type: 1, ttl: 60, data: [1, 2, 3, 4, 5])], authority: [])
            case "loop": // an answer whose name is a pointer to itself
                var bytes = TestDNSServer.response(to: q, rcode: 0, answers: [], authority: [])
                bytes[7] = 1 // ANCOUNT = 1
                let here = bytes.count
                bytes += [0xC0 | UInt8(here >> 8), UInt8(here & 0xFF)] + TestDNSServer.u16(1) + TestDNSServer.u16(1) + TestDNSServer.u32(60)
                    + TestDNSServer.u16(4) + [1, 2, 3, 4]
                return .raw(bytes)
            case "cut": // cut off in the middle of the answer
                let full = TestDNSServer.response(to: q, rcode: 0, answers: [TestDNSServer.a(q.name, Self.v4)], authority: [])
                return .raw(Array(full.prefix(full.count - 3)))
            case "counts": // claims 65535 answers
                var bytes = TestDNSServer.response(to: q, rcode: 0, answers: [TestDNSServer.a(q.name, Self.v4)], authority: [])
                bytes[6] = 0xFF
                bytes[7] = 0xFF
                return .raw(bytes)
            case "tc":
                return .raw(TestDNSServer.response(to: q, rcode: 0, answers: [], authority: [], flags: 0x8380))
            case "servfail":
                return .answer(rcode: 2, answers: [], authority: [])
            case "garbage": // not even a header that matches: ignored, so the deadline ends it
                return .raw(header.map { $0 ^ 0xFF } + [UInt8](repeating: 0xAB, count: 40))
            case "wrongq": // right id, another question: ignored as a spoof
                let other = TestDNSServer.Question(id: q.id, name: "evil.test", type: q.type,
                                                   section: TestDNSServer.encodeName("evil.test") + TestDNSServer.u16(q.type) + TestDNSServer.u16(1))
                return .answer(rcode: 0, answers: [TestDNSServer.a("evil.test", [6, 6, 6, 6])], authority: []).withQuestion(other)
            default:
                return .none
            }
        }
        let r = resolver(dns, timeout: .milliseconds(600))
        for name in ["badlen", "loop", "cut", "counts", "tc", "servfail"] {
            let (result, elapsed) = lookup(r, "\(name).example.test")
            XCTAssertEqual(error(result), .serverFailure, "\(name): a broken answer is a server failure: \(result)")
            XCTAssertLessThan(elapsed, 0.5, "\(name): the only server failed, so the lookup does not wait for the deadline")
        }
        for name in ["garbage", "wrongq"] {
            let (result, _) = lookup(r, "\(name).example.test")
            XCTAssertEqual(error(result), .timedOut, "\(name): an answer that does not match is ignored: \(result)")
        }
    }

    func test_anotherServerIsAskedWhenOneFails() throws {
        let failing = try server { _ in .answer(rcode: 2, answers: [], authority: []) }
        let working = try server { q in
            .answer(rcode: 0, answers: q.type == 1 ? [TestDNSServer.a(q.name, Self.v4)] : [], authority: [])
        }
        var c = StubResolverConfiguration(servers: [failing.address, working.address])
        c.timeout = .seconds(2)
        let (result, elapsed) = lookup(StubResolver(configuration: c), "two.example.test")
        XCTAssertEqual(try result.get(), [Self.v4])
        XCTAssertLessThan(elapsed, 0.5, "SERVFAIL moves on to the next server at once")
    }

    func test_hostsFileAndLocalhostNeedNoServer() throws {
        let dns = try server { _ in .none }
        let r = resolver(dns) { $0.hosts = HostsFile.parse("127.0.0.1 localhost\n10.1.2.3\tbox.lan box # comment\n# 1.1.1.1 off\nbad line\n") }
        XCTAssertEqual(try lookup(r, "localhost").0.get(), [[127, 0, 0, 1]])
        XCTAssertEqual(try lookup(r, "BOX.lan").0.get(), [[10, 1, 2, 3]])
        XCTAssertEqual(try lookup(r, "box").0.get(), [[10, 1, 2, 3]])
        XCTAssertEqual(try lookup(r, "api.localhost").0.get(), HostsFile.loopback, "RFC 6761: *.localhost is loopback")
        XCTAssertEqual(dns.questions.count, 0, "no query for names the hosts file answers")
        let bare = StubResolver(configuration: StubResolverConfiguration(servers: []))
        XCTAssertEqual(try lookup(bare, "localhost").0.get(), HostsFile.loopback, "localhost resolves to loopback even without a hosts entry")
    }

    func test_namesThatCannotBeDNSNamesFailWithoutAQuery() throws {
        let dns = try server { _ in .none }
        let r = resolver(dns)
        for name in ["a..b", String(repeating: "x", count: 64) + ".test", Array(repeating: "abcdefghi", count: 26).joined(separator: "."), "."] {
            XCTAssertEqual(error(lookup(r, name).0), .invalidName, name)
        }
        XCTAssertEqual(dns.questions.count, 0)
    }

    func test_randomAndMutatedResponsesNeverTrapTheParser() throws {
        guard let labels = DNSMessage.labels(of: "www.example.test") else { return XCTFail("labels") }
        let q = TestDNSServer.Question(id: 0x1234, name: "www.example.test", type: 1,
                                       section: TestDNSServer.encodeName("www.example.test") + TestDNSServer.u16(1) + TestDNSServer.u16(1))
        let valid = TestDNSServer.response(to: q, rcode: 0, answers: [TestDNSServer.cname("www.example.test", "x.example.test"),
                                                                         TestDNSServer.a("x.example.test", Self.v4)],
                                           authority: [TestDNSServer.soa(zone: "example.test", ttl: 5, minimum: 5)])
        XCTAssertEqual(try DNSMessage.parseResponse(valid, id: 0x1234, labels: labels, type: .a), .addresses([Self.v4], ttl: 300))
        var generator = SystemRandomNumberGenerator()
        // 10,000 inputs take about a second in a debug build and reach every branch of the reader many times.
        for i in 0..<10_000 {
            var bytes = valid
            if i % 4 == 0 {
                bytes = (0..<Int.random(in: 0...600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let at = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[at] = UInt8.random(in: 0...255, using: &generator)
                }
                if i % 3 == 0 { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator))) }
            }
            _ = try? DNSMessage.parseResponse(bytes, id: 0x1234, labels: labels, type: .a)
        }
    }

    func test_cacheDropsTheLeastRecentlyUsedEntryWhenFull() {
        let cache = DNSCache(capacity: 2)
        let a = DNSCache.Key(name: "a", type: .a), b = DNSCache.Key(name: "b", type: .a), c = DNSCache.Key(name: "c", type: .a)
        cache.put(a, .addresses([[1, 1, 1, 1]]), ttlSeconds: 60)
        cache.put(b, .addresses([[2, 2, 2, 2]]), ttlSeconds: 60)
        XCTAssertNotNil(cache.get(a)) // a is now more recent than b
        cache.put(c, .negative(nameExists: false), ttlSeconds: 60)
        XCTAssertEqual(cache.count, 2)
        XCTAssertNil(cache.get(b), "the least recently used entry went")
        XCTAssertEqual(cache.get(a), .addresses([[1, 1, 1, 1]]))
        XCTAssertEqual(cache.get(c), .negative(nameExists: false))
        // Many hits on a cache that never fills do not grow it.
        for _ in 0..<10_000 { _ = cache.get(a) }
        XCTAssertEqual(cache.count, 2)
    }

    func test_resolvConfNameserversAreTheDefault() {
        let text = "# generated\nsearch lan\nnameserver 10.0.0.53\nnameserver  fe80::1%eth0\nnameserver ::1\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
        XCTAssertEqual(ResolvConf.nameservers(text), ["10.0.0.53", "::1", "1.1.1.1"], "scoped addresses skipped, at most 3 (MAXNS)")
        let path = NSTemporaryDirectory() + "resolv-\(UUID().uuidString).conf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try? "search lan\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(ResolvConf.defaultServers(path: path).map { $0.ipAddress ?? "" }, ["127.0.0.53", "::1"], "no nameserver: the fallbacks")
    }

    private func poll(_ seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }
}

extension TestDNSServer.Reply {
    /// The same answer records, but echoing another question (for the spoof test).
    func withQuestion(_ other: TestDNSServer.Question) -> TestDNSServer.Reply {
        guard case .answer(let rcode, let answers, let authority) = self else { return self }
        return .raw(TestDNSServer.response(to: other, rcode: rcode, answers: answers, authority: authority))
    }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<[[UInt8]], any Error>?
    func set(_ v: Result<[[UInt8]], any Error>) {
        lock.lock()
        defer { lock.unlock() }
        value = v
    }
    func get() -> Result<[[UInt8]], any Error>? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
