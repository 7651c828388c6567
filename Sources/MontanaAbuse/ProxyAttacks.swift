import Foundation

extension Attacks {
    /// `CONNECT [` + 400 characters + `]:443` to the client's HTTP port: answered 400, client alive.
    func malformedConnect() throws -> AttackReport {
        let probe = ProcessProbe(pid: demo.pid)
        let before = probe.rssKiB()
        let request = "CONNECT [" + String(repeating: "a", count: 400) + "]:443 HTTP/1.1\r\nHost: x\r\n\r\n"
        let answer = try Self.exchange(host: demo.client.http.host, port: demo.client.http.port, send: Array(request.utf8))
        let firstLine = answer.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? "(nothing)"
        let alive = probe.isAlive
        let legit = (0..<3).filter { _ in LegitimateTraffic.fetch(socks: demo.client.socks, url: demo.site.url) }.count
        return AttackReport(
            name: "malformed CONNECT (400-character bracketed host) to the client's HTTP port",
            limit: "request head and host length bounded; hosts over 255 bytes refused before any EgressOpen is built",
            rssBeforeKiB: before, rssPeakKiB: probe.rssKiB(), rssAfterKiB: probe.rssKiB(),
            legitimate: "\(legit)/3 fetches afterwards; client process \(alive ? "alive" : "DEAD")",
            detail: "answer: \(firstLine)",
            passed: firstLine.hasPrefix("HTTP/1.1 400") && alive && legit == 3)
    }

    /// Egress to the exit's own admin port and to a member's transit port through the proxy.
    func selfEgress() throws -> AttackReport {
        guard let exit = demo.exits.first else { throw AbuseError("the demo has no exit") }
        let probe = ProcessProbe(pid: exit.pid)
        let before = probe.rssKiB()
        var reached: [String] = []
        let targets = demo.cities.flatMap { ["http://\($0.admin.host):\($0.admin.port)/status", "http://\($0.transit.host):\($0.transit.port)/"] }
        for url in targets {
            let r = LegitimateTraffic.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                                             "--socks5-hostname", "\(demo.client.socks.host):\(demo.client.socks.port)", url])
            if r.status == 0 { reached.append(url) }
        }
        let legit = (0..<3).filter { _ in LegitimateTraffic.fetch(socks: demo.client.socks, url: demo.site.url) }.count
        return AttackReport(
            name: "egress to the alliance's own admin and transit ports through the exits",
            limit: "exit denies its interface addresses, members' transit endpoints and its admin address unless allow_private says otherwise",
            rssBeforeKiB: before, rssPeakKiB: probe.rssKiB(), rssAfterKiB: probe.rssKiB(),
            legitimate: "\(legit)/3 fetches of the demo site",
            detail: reached.isEmpty ? "all \(targets.count) refused" : "REACHED: \(reached.joined(separator: ", "))",
            passed: reached.isEmpty && legit == 3)
    }

    /// Sends `send` on a fresh TCP connection and returns what comes back within 5 s.
    static func exchange(host: String, port: Int, send: [UInt8]) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AbuseError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { throw AbuseError("cannot connect to \(host):\(port)") }
        _ = send.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while received.count < 65536 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            received += chunk[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
