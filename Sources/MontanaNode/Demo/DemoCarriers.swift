import Foundation
import MontanaTransport

#if canImport(Glibc)
import Glibc
#endif

/// The carriers each demo city offers, and the demo's nginx for T2.
///
/// T0 (raw TCP) and T1 (TLS relayed to the demo's cover site) everywhere; T2 (WebSocket over TLS, PROTOCOL.md 2.3) for one city, behind a demo
/// nginx on loopback that terminates TLS with a throw-away CA the demo client trusts — like the
/// testbed's CDN — when nginx and openssl are installed; otherwise the banner says T2 was skipped.
public enum DemoCarrier: String, Sendable, CaseIterable {
    case t0, t1, t2

    /// The carriers of city `index` (0-based, start order): T0 and T1 (universal key, the demo's
    /// loopback cover site) everywhere, T2 for one city.
    public static func carriers(forCity index: Int, t2Available: Bool) -> [DemoCarrier] {
        var out: [DemoCarrier] = [.t0, .t1]
        if t2Available && index == t2CityIndex { out.append(.t2) }
        return out
    }

    /// warsaw (front only, in every demo): it fronts both the DE and the NL exit, so stopping
    /// berlin leaves it the only front for NL, whose circuit then runs over T2.
    public static let t2CityIndex = 2
}

/// nginx for the demo's T2 city: TLS on 127.0.0.1:`port` with a leaf for `hostName` signed by a
/// throw-away CA (openssl, two days), the city's secret path proxied to its plain-HTTP
/// `[carriers.ws]` listener, every other path a static page. The same directives as
/// scripts/nginx/t2-cdn.conf.template (which the tests and the testbed render). Foreground, no
/// master process, under a tiny `sh` that holds a pipe from the demo on its stdin: when the demo
/// stops it (or dies, even by SIGKILL) the pipe closes and the shell kills nginx by its PID.
public final class DemoNginx: @unchecked Sendable {
    /// The name T2 clients send as Host and SNI; the leaf covers it and 127.0.0.1.
    public static let hostName = "t2.montana-demo.example"

    public let port: Int
    public let caFile: String
    public let prefix: String
    private let process: Process
    private let lifeline: Pipe

    /// nginx and openssl, or why T2 is skipped ("nginx not installed").
    public static func tools() -> (nginx: String, openssl: String)? {
        guard let nginx = find("nginx", extra: ["/usr/sbin/nginx"]), let openssl = find("openssl", extra: ["/usr/bin/openssl"]) else {
            return nil
        }
        return (nginx, openssl)
    }

    public static var missingTool: String {
        find("nginx", extra: ["/usr/sbin/nginx"]) == nil ? "nginx not installed" : "openssl not installed"
    }

    static func find(_ name: String, extra: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let candidates = path.split(separator: ":").map { "\($0)/\(name)" } + extra
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Makes the CA and leaf in `prefix`, writes nginx.conf and starts nginx; waits (≤ 15 s)
    /// until it accepts on `port`.
    public static func start(tools: (nginx: String, openssl: String), prefix: String, port: Int, wsPath: String,
                             upstream: String) async throws -> DemoNginx {
        let fm = FileManager.default
        try fm.createDirectory(atPath: prefix + "/html", withIntermediateDirectories: true)
        func path(_ n: String) -> String { (prefix as NSString).appendingPathComponent(n) }
        try "subjectAltName=DNS:\(hostName),IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: path("leaf.ext"), atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let steps: [[String]] = [
            ["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "2", "-subj", "/CN=Montana demo CA"],
            ["req"] + ec + ["-keyout", path("leaf.key"), "-out", path("leaf.csr"), "-subj", "/CN=\(hostName)"],
            ["x509", "-req", "-in", path("leaf.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
             "-out", path("leaf.crt"), "-days", "2", "-extfile", path("leaf.ext")],
        ]
        for args in steps { try await run(tools.openssl, args, log: path("openssl.log")) }
        try "<html><body><h1>It works</h1></body></html>\n".write(toFile: path("html/index.html"), atomically: true, encoding: .utf8)
        try config(prefix: prefix, port: port, cert: path("leaf.crt"), key: path("leaf.key"), wsPath: wsPath, upstream: upstream)
            .write(toFile: path("nginx.conf"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // nginx in the background; the shell waits for EOF on its stdin (the demo's end of the
        // pipe closing), then stops nginx by PID. SIGKILL: nginx inherits the demo's signal mask
        // (TERM and INT blocked for TerminationSignal), so it would never see a SIGTERM.
        process.arguments = ["-c", "\"$0\" \"$@\" </dev/null & p=$!; read -r _; kill -9 $p 2>/dev/null",
                             tools.nginx, "-p", prefix, "-c", path("nginx.conf"), "-e", path("error.log")]
        if !fm.fileExists(atPath: path("nginx.out")) { _ = fm.createFile(atPath: path("nginx.out"), contents: nil) }
        let log = FileHandle(forWritingAtPath: path("nginx.out"))
        process.standardOutput = log
        process.standardError = log
        let lifeline = Pipe()
        process.standardInput = lifeline
        try process.run()
        let nginx = DemoNginx(port: port, caFile: path("ca.crt"), prefix: prefix, process: process, lifeline: lifeline)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if DemoAlliance.canConnect(port) { return nginx }
            guard process.isRunning else { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        nginx.stop()
        let err = (try? String(contentsOfFile: path("error.log"), encoding: .utf8)).map { String($0.suffix(1000)) } ?? ""
        throw DemoError.nginxFailed("nginx did not listen on 127.0.0.1:\(port) within 15 s: \(err)")
    }

    private init(port: Int, caFile: String, prefix: String, process: Process, lifeline: Pipe) {
        self.port = port
        self.caFile = caFile
        self.prefix = prefix
        self.process = process
        self.lifeline = lifeline
    }

    /// nginx's own PID (its pid file), else the wrapper shell's.
    public var pid: Int32 {
        let text = (try? String(contentsOfFile: (prefix as NSString).appendingPathComponent("nginx.pid"), encoding: .utf8)) ?? ""
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? process.processIdentifier
    }

    public var isRunning: Bool { process.isRunning }

    /// Closes the lifeline (the shell then stops nginx by PID) and waits ≤ 3 s; then SIGKILL to
    /// nginx (by its pid file) and to the shell.
    public func stop() {
        let nginxPID = pid
        try? lifeline.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            // Only the shell's own child: a stale pid file must not name someone else's process.
            if nginxPID != process.processIdentifier, Self.parent(of: nginxPID) == process.processIdentifier { kill(nginxPID, SIGKILL) }
            kill(process.processIdentifier, SIGKILL)
        }
    }

    /// The parent PID from /proc/PID/stat (nil when gone).
    static func parent(of pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    private static func run(_ tool: String, _ args: [String], log: String) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = FileHandle(forWritingAtPath: log)
        handle?.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            throw DemoError.nginxFailed("openssl \(args.first ?? "") did not finish within 30 s")
        }
        guard p.terminationStatus == 0 else {
            let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(600)) } ?? ""
            throw DemoError.nginxFailed("openssl \(args.joined(separator: " ")) failed (\(p.terminationStatus)): \(tail)")
        }
    }

    /// The nginx configuration (the template's directives, filled in).
    static func config(prefix: String, port: Int, cert: String, key: String, wsPath: String, upstream: String) -> String {
        """
        # Generated by `montana demo`: TLS for \(hostName) on 127.0.0.1:\(port), T2's secret path to the
        # city's [carriers.ws] listener (\(upstream)), every other path a static page.
        daemon off;
        master_process off;
        worker_processes 1;
        error_log \(prefix)/error.log warn;
        pid \(prefix)/nginx.pid;
        events { worker_connections 256; }
        http {
            access_log \(prefix)/access.log;
            client_body_temp_path \(prefix)/client_body;
            proxy_temp_path \(prefix)/proxy;
            fastcgi_temp_path \(prefix)/fastcgi;
            uwsgi_temp_path \(prefix)/uwsgi;
            scgi_temp_path \(prefix)/scgi;
            server_tokens off;
            default_type text/html;
            map $http_upgrade $connection_upgrade { default upgrade; '' close; }
            server {
                listen 127.0.0.1:\(port) ssl;
                server_name \(hostName);
                ssl_certificate \(cert);
                ssl_certificate_key \(key);
                ssl_protocols TLSv1.2 TLSv1.3;
                root \(prefix)/html;
                location = \(wsPath) {
                    proxy_pass http://\(upstream);
                    proxy_http_version 1.1;
                    proxy_set_header Upgrade $http_upgrade;
                    proxy_set_header Connection $connection_upgrade;
                    proxy_set_header Host $host;
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Real-IP $remote_addr;
                    proxy_buffering off;
                    proxy_request_buffering off;
                    proxy_read_timeout 3600s;
                    proxy_send_timeout 3600s;
                }
                location / { try_files $uri $uri/index.html =404; }
            }
        }

        """
    }
}
