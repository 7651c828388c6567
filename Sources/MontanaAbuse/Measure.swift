import Foundation

/// Reads a process's resident set and CPU time from /proc, and samples the peak in the background.
final class ProcessProbe: @unchecked Sendable {
    let pid: Int32
    private let lock = NSLock()
    private var peak = 0
    private var running = false

    init(pid: Int32) { self.pid = pid }

    /// Resident set in KiB (VmRSS), 0 if the process is gone.
    func rssKiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    /// utime + stime in seconds.
    func cpuSeconds() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Fields after the command: state is index 0, utime 11, stime 12.
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    var isAlive: Bool { kill(pid, 0) == 0 }

    func startSampling() {
        lock.lock()
        peak = rssKiB()
        running = true
        lock.unlock()
        Thread.detachNewThread { [self] in
            while true {
                let now = rssKiB()
                lock.lock()
                if !running { lock.unlock(); return }
                peak = max(peak, now)
                lock.unlock()
                usleep(50_000)
            }
        }
    }

    func stopSampling() -> Int {
        lock.lock()
        defer { lock.unlock() }
        running = false
        return max(peak, rssKiB())
    }
}

/// Fetches through the demo's local proxy with real curl, as a user would.
enum LegitimateTraffic {
    /// One fetch of the demo site through SOCKS5; true on HTTP 200 within `timeout`.
    static func fetch(socks: DemoTarget.Address, url: String, user: String? = nil, timeout: Int = 10) -> Bool {
        var arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "\(timeout)",
                         "--socks5-hostname", "\(socks.host):\(socks.port)"]
        if let user { arguments += ["-U", user] }
        arguments.append(url)
        return run("/usr/bin/curl", arguments).output == "200"
    }

    static func run(_ path: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// One line of the report.
struct AttackReport {
    var name: String
    var limit: String
    var rssBeforeKiB: Int
    var rssPeakKiB: Int
    var rssAfterKiB: Int
    var legitimate: String
    var detail: String
    var passed: Bool

    func printed() -> String {
        let mib = { (k: Int) in String(format: "%.1f", Double(k) / 1024) }
        return """
        == \(name): \(passed ? "PASS" : "FAIL")
           limit:      \(limit)
           node RSS:   before \(mib(rssBeforeKiB)) MiB, peak \(mib(rssPeakKiB)) MiB (+\(mib(rssPeakKiB - rssBeforeKiB))), after \(mib(rssAfterKiB)) MiB
           legitimate: \(legitimate)
           detail:     \(detail)
        """
    }
}
