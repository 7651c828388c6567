import Foundation
import MontanaExit
import XCTest
@testable import MontanaNode

/// `[dns]` and the exit's new `[limits]` keys in node.toml.
final class DNSSettingsTests: XCTestCase {
    private var fixture: ConfigFixture!

    override func setUpWithError() throws {
        fixture = try ConfigFixture()
    }

    override func tearDown() {
        fixture = nil
    }

    private func assertError(_ extra: String, limits: String = "", key: String, contains problem: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        let text = fixture.nodeText(extra: extra, replacing: limits.isEmpty ? [] : [("[limits]\n", "[limits]\n\(limits)\n")])
        guard let error = fixture.nodeError(text) else {
            return XCTFail("expected an error at \(key)", file: file, line: line)
        }
        XCTAssertEqual(error.key, key, "\(error)", file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix("node.toml: \(key): "), error.description, file: file, line: line)
        XCTAssertTrue(error.description.contains(problem), error.description, file: file, line: line)
    }

    /// The resolver's timeout, per-session and in-flight caps, cache size and TTL clamp.
    private func assertBounds(_ resolver: StubResolverConfiguration, timeoutMs: Int64, maxPerSession: Int, maxInflight: Int,
                              cacheEntries: Int, minTTL: UInt32, maxTTL: UInt32, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(resolver.timeout, .milliseconds(timeoutMs), "timeout", file: file, line: line)
        XCTAssertEqual(resolver.maxPerSession, maxPerSession, "max_per_session", file: file, line: line)
        XCTAssertEqual(resolver.maxInflight, maxInflight, "max_inflight", file: file, line: line)
        XCTAssertEqual(resolver.cacheEntries, cacheEntries, "cache_entries", file: file, line: line)
        XCTAssertEqual(resolver.minTTL, minTTL, "min_ttl_seconds", file: file, line: line)
        XCTAssertEqual(resolver.maxTTL, maxTTL, "max_ttl_seconds", file: file, line: line)
    }

    func test_withoutDNSSectionTheDefaultsApply() throws {
        let config = try fixture.parseNode(fixture.nodeText())
        XCTAssertEqual(config.dns, DNSSettings())
        XCTAssertNil(config.dns.servers, "no servers: /etc/resolv.conf")
        let resolver = config.dns.resolverConfiguration()
        assertBounds(resolver, timeoutMs: 5000, maxPerSession: 8, maxInflight: 256, cacheEntries: 10_000, minTTL: 5, maxTTL: 3600)
        XCTAssertFalse(resolver.servers.isEmpty, "resolv.conf or the fallbacks")
        XCTAssertEqual(config.limits.sessionsPerAccount, 8, "the fixture's [limits] does not set it")
        XCTAssertEqual(config.limits.streamsPerAccount, 1024)
        XCTAssertEqual(config.limits.connectAttemptsPerOpen, 4)
    }

    func test_dnsSectionIsRead() throws {
        let hosts = try fixture.write("10.9.8.7 printer.lan\n", to: "hosts")
        let config = try fixture.parseNode(fixture.nodeText(extra: """

        [dns]
        servers = ["127.0.0.1:5353", "[::1]:53"]
        timeout_ms = 1000
        max_per_session = 4
        max_inflight = 64
        cache_entries = 100
        min_ttl_seconds = 1
        max_ttl_seconds = 60
        hosts_file = "\(hosts)"

        """))
        XCTAssertEqual(config.dns.servers, [HostPort(host: "127.0.0.1", port: 5353), HostPort(host: "::1", port: 53)])
        let resolver = config.dns.resolverConfiguration()
        XCTAssertEqual(resolver.servers.map(\.port), [5353, 53])
        assertBounds(resolver, timeoutMs: 1000, maxPerSession: 4, maxInflight: 64, cacheEntries: 100, minTTL: 1, maxTTL: 60)
        XCTAssertEqual(resolver.hosts.lookup("printer.lan"), [[10, 9, 8, 7]])
    }

    func test_exitLimitKeysAreRead() throws {
        let text = fixture.nodeText(replacing: [("[limits]\n", "[limits]\nsessions_per_account = 2\nstreams_per_account = 50\nconnect_attempts_per_open = 2\n")])
        let limits = try fixture.parseNode(text).limits
        XCTAssertEqual(limits.sessionsPerAccount, 2)
        XCTAssertEqual(limits.streamsPerAccount, 50)
        XCTAssertEqual(limits.connectAttemptsPerOpen, 2)
    }

    func test_memoryLimitKeysAreReadAndBounded() throws {
        let defaults = try fixture.parseNode(fixture.nodeText(replacing: [])).limits
        XCTAssertEqual(defaults.mallocArenas, 1)
        XCTAssertEqual(defaults.egressSmallBuffersAfter, 64)
        let text = fixture.nodeText(replacing: [("[limits]\n", "[limits]\nmalloc_arenas = 0\negress_small_buffers_after = 500\n")])
        let limits = try fixture.parseNode(text).limits
        XCTAssertEqual(limits.mallocArenas, 0)
        XCTAssertEqual(limits.egressSmallBuffersAfter, 500)
        assertError("", limits: "malloc_arenas = 65", key: "limits.malloc_arenas", contains: "out of range")
        assertError("", limits: "egress_small_buffers_after = -1", key: "limits.egress_small_buffers_after", contains: "out of range")
    }

    func test_badDNSValuesNameTheKey() {
        assertError("\n[dns]\nservers = []\n", key: "dns.servers", contains: "empty")
        assertError("\n[dns]\nservers = [\"dns.example:53\"]\n", key: "dns.servers[0]", contains: "not an IP address")
        assertError("\n[dns]\nservers = [\"127.0.0.1:53\", \"127.0.0.1\"]\n", key: "dns.servers[1]", contains: "not host:port")
        assertError("\n[dns]\ntimeout_ms = 10\n", key: "dns.timeout_ms", contains: "out of range")
        assertError("\n[dns]\nmin_ttl_seconds = 100\nmax_ttl_seconds = 10\n", key: "dns.min_ttl_seconds", contains: "exceeds max_ttl_seconds")
        assertError("\n[dns]\nmax_per_session = 300\n", key: "dns.max_per_session", contains: "exceeds max_inflight")
        assertError("\n[dns]\ntimeout = 5\n", key: "dns.timeout", contains: "unknown key")
        assertError("", limits: "connect_attempts_per_open = 0", key: "limits.connect_attempts_per_open", contains: "out of range")
        assertError("", limits: "sessions_per_account = 0", key: "limits.sessions_per_account", contains: "out of range")
        assertError("", limits: "streams_per_account = 0", key: "limits.streams_per_account", contains: "out of range")
    }
}
