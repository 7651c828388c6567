import ArgumentParser
import Foundation
import Logging
import MontanaNode

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a whole alliance on loopback (3 to 12 cities, a local web site) plus your local proxy.",
        discussion: """
        Creates an alliance, endorses its cities and starts them as real `montana node` processes on \
        distinct loopback /16s (berlin DE front+exit on 127.1.0.1, amsterdam NL front+exit on 127.2.0.1, \
        warsaw PL front on 127.3.0.1, more with --cities), each bootstrapped from one other city only; \
        they gossip the signed directory and attest each other's egress country with a bundled loopback \
        GeoIP table. The client imports a generated subscription, learns every member from the \
        directory, and offers SOCKS5 and HTTP ports. Prints the cities, the countries and curl commands \
        to try, then live circuit status until Ctrl-C. Nothing to install and nothing leaves loopback.
        """
    )

    @Option(help: "SOCKS5 listen address.")
    var socks = "127.0.0.1:1080"

    @Option(help: "HTTP proxy listen address.")
    var http = "127.0.0.1:8080"

    @Option(help: "Port of the local web site (0 picks a free one).")
    var sitePort = 0

    @Option(help: "Write a machine-readable description (cities, keys, ports, pids) to this file.")
    var statusJSON: String?

    @Option(help: "Keep keys, configs and logs here instead of a temporary directory.")
    var dir: String?

    @Flag(help: "Keep the default exit policy (loopback refused) instead of allowing the local site.")
    var strictExitPolicy = false

    @Flag(help: "Exits admit only the demo client's account (allow-list admission).")
    var allowList = false

    @Flag(help: "Print no live status (for scripts).")
    var quiet = false

    @Option(help: "Log level of the demo's client (trace, debug, info, notice, warning, error).")
    var logLevel = "notice"

    @Option(help: "DNS server (IP:port) the demo's exits resolve names with, instead of /etc/resolv.conf; repeatable.")
    var dnsServer: [String] = []

    @Option(help: "Deadline of one DNS lookup at the demo's exits, in milliseconds ([dns] timeout_ms).")
    var dnsTimeoutMs: Int?

    @Option(help: "Local address the demo's client connects to fronts from (\"\" lets the OS choose).")
    var clientSource = "127.0.1.1"

    @Option(help: "How many cities to start (3 to 12).")
    var cities = 3

    @Option(help: "The demo client's status port (/status, /directory), e.g. 127.0.0.1:9090 (default: a free port).")
    var admin: String?

    @Flag(help: "No T2 city (by default one city offers T2 behind a demo nginx when nginx and openssl are installed).")
    var noT2 = false

    @Option(help: "The demo client's carrier ladder, comma-separated (e.g. t2, or t2,t0; default: the client's default ladder).")
    var carriers: String?

    func run() async throws {
        var options = DemoAlliance.Options()
        do {
            options.socks = try HostPort(parsing: socks)
            options.http = try HostPort(parsing: http)
        } catch {
            throw ValidationError("--socks/--http: \(error)")
        }
        options.sitePort = sitePort
        guard DemoAlliance.cityCountRange.contains(cities) else { throw ValidationError("--cities: the demo runs 3 to 12 cities") }
        options.cityCount = cities
        if let admin {
            do { options.clientAdmin = try HostPort(parsing: admin) } catch { throw ValidationError("--admin: \(error)") }
        }
        options.directory = dir
        options.t2 = !noT2
        if let carriers {
            let names = carriers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw ValidationError("--carriers: list at least one of t2, t0") }
            options.clientCarriers = names
        }
        options.strictPolicy = strictExitPolicy
        options.allowListAdmission = allowList
        if !dnsServer.isEmpty {
            do { options.dnsServers = try dnsServer.map { try HostPort(parsing: $0) } } catch { throw ValidationError("--dns-server: \(error)") }
        }
        options.dnsTimeoutMilliseconds = dnsTimeoutMs
        if clientSource.isEmpty {
            options.clientSource = nil
        } else {
            do { options.clientSource = try ClientSourceAddress(parsing: clientSource) } catch { throw ValidationError("--client-source: \(error)") }
        }
        let logger = LogSetup.bootstrap(Logger.Level(rawValue: logLevel) ?? .notice, label: "montana.demo")
        let demo = try DemoAlliance(options: options, logger: logger)
        do {
            try await demo.start()
        } catch {
            await demo.stop()
            throw ValidationError("\(error)")
        }
        say(demo.banner())
        if let statusJSON {
            try demo.statusJSON().write(to: URL(fileURLWithPath: statusJSON))
        }
        let live = Task {
            var last = ""
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 2_000_000_000)
                if quiet { continue }
                let circuits = await demo.circuits()
                var lines = circuits.map { c in
                    "  circuit  front \(c.front)" + (c.reserve.map { " (reserve \($0))" } ?? "") + " -> exit \(c.exit) (\(c.exitCountry))  carrier \(c.carrier ?? "t0")  streams \(c.streamsActive) open / \(c.streamsOpened) total  "
                        + "up \(Self.bytes(c.bytesUp))  down \(Self.bytes(c.bytesDown))"
                        + ((c.resumptions ?? 0) > 0 ? "  resumed \(c.resumptions ?? 0)× (last stall \(c.lastStallMilliseconds ?? 0) ms)" : "")
                }
                for dead in demo.deadCities { lines.append("  city \(dead) is down") }
                // Print only when something changed, so an idle demo stays quiet.
                let text = lines.joined(separator: "\n")
                if text != last && !text.isEmpty {
                    say("[\(Self.clock())]\n\(text)")
                }
                last = text
            }
        }
        _ = await TerminationSignal.wait()
        live.cancel()
        say("\nstopping the demo alliance…")
        await demo.stop()
        say("stopped.")
    }

    static func bytes(_ n: Int) -> String {
        if n >= 1 << 30 { return String(format: "%.2f GiB", Double(n) / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", Double(n) / Double(1 << 10)) }
        return "\(n) B"
    }

    static func clock() -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f.string(from: Date())
    }
}

/// Unbuffered output: the demo's table and live lines must appear at once even when piped.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
