import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Runs one pluggable-transport program (obfs4proxy or lyrebird) in Tor PT 1.0 managed mode
/// and keeps it running: it reads the program's stdout until `SMETHODS DONE` / `CMETHODS DONE`
/// (at most `maxHandshakeLines` lines of at most 4096 bytes, within `handshakeTimeout`), turns
/// `ENV-ERROR`, `VERSION-ERROR` and `*METHOD-ERROR` into a `ManagedTransportError` naming the
/// config key, restarts the program when it dies (backoff 1 s doubling to 30 s, reset after a
/// minute of uptime), and kills it — by its PID, SIGTERM then SIGKILL — on `stop()`. The
/// program's stdin stays open and `TOR_PT_EXIT_ON_STDIN_CLOSE=1` is set, so it also ends if
/// this process dies. Output after the handshake is read and dropped (never logged at info:
/// obfs4proxy may name client addresses). Every mutable field is behind `state`'s lock.
public final class ManagedTransport: @unchecked Sendable {
    public enum Mode: Sendable {
        /// `TOR_PT_SERVER_*`: listen on `bind` ("HOST:PORT"); carriers go to the Extended
        /// ORPort `extendedORPort` (authenticated with the cookie file) or, without it, `orPort`.
        case server(bind: String, orPort: String?, extendedORPort: String?, cookieFile: String?, iatMode: Int)
        /// `TOR_PT_CLIENT_TRANSPORTS`: a local SOCKS5 proxy.
        case client
    }

    public struct Settings: Sendable {
        /// Program name (looked up on PATH) or path.
        public var binary: String
        public var transport = "obfs4"
        public var stateDirectory: String
        public var mode: Mode
        /// Names the configuration in every error, e.g. "node.toml: [carriers.obfs4]".
        public var configKey: String

        public init(binary: String, stateDirectory: String, mode: Mode, configKey: String) {
            self.binary = binary
            self.stateDirectory = stateDirectory
            self.mode = mode
            self.configKey = configKey
        }
    }

    /// What the program reported: the SMETHOD's or CMETHOD's address and its ARGS.
    public struct Method: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var args: [String: String]
    }

    public static let handshakeTimeout: TimeInterval = 15
    public static let maxHandshakeLines = 256
    public static let maxBackoff: TimeInterval = 30

    public let settings: Settings
    let logger: Logger

    private struct State {
        var process: Process?
        var method: Method?
        var waiters: [EventLoopPromise<Method>] = []
        var starting = false
        var stopped = false
        var restarts = 0
        var backoff: TimeInterval = 1
        var startedAt: Date?
        var lastError: String?
        var restartPending: DispatchWorkItem?
    }
    private let state = NIOLockedValueBox(State())
    /// Called after every (re)start that reached DONE, with the method reported.
    public let onRunning = NIOLockedValueBox<(@Sendable (Method) -> Void)?>(nil)
    /// Called when the program died unexpectedly (before the restart).
    public let onDied = NIOLockedValueBox<(@Sendable (Int32) -> Void)?>(nil)

    public init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The full path of `binary` (as given when it contains a '/', else the first match on PATH).
    public static func locate(_ binary: String) -> String? {
        if binary.contains("/") { return FileManager.default.isExecutableFile(atPath: binary) ? binary : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(binary)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public var restarts: Int { state.withLockedValue { $0.restarts } }
    public var pid: Int32? { state.withLockedValue { $0.process.map { $0.isRunning ? $0.processIdentifier : nil } ?? nil } }
    public var currentMethod: Method? { state.withLockedValue { s in s.process?.isRunning == true ? s.method : nil } }
    public var lastError: String? { state.withLockedValue { $0.lastError } }

    /// `/status`: state, pid-free (a PID says nothing useful remotely), restarts, address.
    public func statusDocument() -> [String: any Sendable] {
        state.withLockedValue { s in
            var doc: [String: any Sendable] = ["restarts": s.restarts,
                                               "state": s.stopped ? "stopped" : (s.process?.isRunning == true && s.method != nil ? "running" : (s.starting ? "starting" : "down"))]
            if let m = s.method { doc["address"] = m.host.contains(":") ? "[\(m.host)]:\(m.port)" : "\(m.host):\(m.port)" }
            if let e = s.lastError { doc["last_error"] = e }
            return doc
        }
    }

    /// The running program's method, starting it now if it is not running (a pending restart
    /// is brought forward). Fails with a `ManagedTransportError`.
    public func ensureRunning(on loop: any EventLoop) -> EventLoopFuture<Method> {
        let promise = loop.makePromise(of: Method.self)
        let action: Bool = state.withLockedValue { s in
            if s.stopped {
                promise.fail(ManagedTransportError.stopped(settings.configKey))
                return false
            }
            if let m = s.method, s.process?.isRunning == true {
                promise.succeed(m)
                return false
            }
            s.waiters.append(promise)
            if s.starting { return false }
            s.restartPending?.cancel()
            s.restartPending = nil
            s.starting = true
            return true
        }
        if action { DispatchQueue.global().async { self.launch() } }
        return promise.futureResult
    }

    /// Stops the program (SIGTERM, then SIGKILL after 2 s) and refuses restarts.
    public func stop() {
        let (process, waiters) = state.withLockedValue { s -> (Process?, [EventLoopPromise<Method>]) in
            s.stopped = true
            s.restartPending?.cancel()
            let w = s.waiters
            s.waiters = []
            return (s.process, w)
        }
        for w in waiters { w.fail(ManagedTransportError.stopped(settings.configKey)) }
        guard let process, process.isRunning else { return }
        let pid = process.processIdentifier
        process.terminate()
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(pid, SIGKILL) }
    }

    private func environment(cookieDir: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TOR_PT_") }
        env["TOR_PT_MANAGED_TRANSPORT_VER"] = "1"
        env["TOR_PT_STATE_LOCATION"] = settings.stateDirectory
        env["TOR_PT_EXIT_ON_STDIN_CLOSE"] = "1"
        switch settings.mode {
        case .client:
            env["TOR_PT_CLIENT_TRANSPORTS"] = settings.transport
        case .server(let bind, let orPort, let extended, let cookie, let iat):
            env["TOR_PT_SERVER_TRANSPORTS"] = settings.transport
            env["TOR_PT_SERVER_BINDADDR"] = "\(settings.transport)-\(bind)"
            env["TOR_PT_SERVER_TRANSPORT_OPTIONS"] = "\(settings.transport):iat-mode=\(iat)"
            env["TOR_PT_ORPORT"] = orPort ?? ""
            if let extended, let cookie {
                env["TOR_PT_EXTENDED_SERVER_PORT"] = extended
                env["TOR_PT_AUTH_COOKIE_FILE"] = cookie
            }
        }
        return env
    }

    /// Runs off the event loops (it blocks while the program reports its methods).
    private func launch() {
        let result: Result<Method, ManagedTransportError>
        do {
            result = .success(try runOnce())
        } catch {
            result = .failure(error)
        }
        let (waiters, callback) = state.withLockedValue { s -> ([EventLoopPromise<Method>], (@Sendable (Method) -> Void)?) in
            s.starting = false
            let w = s.waiters
            s.waiters = []
            switch result {
            case .success(let m):
                s.method = m
                s.lastError = nil
                s.startedAt = Date()
            case .failure(let e):
                s.lastError = e.description
            }
            return (w, onRunning.withLockedValue { $0 })
        }
        switch result {
        case .success(let m):
            for w in waiters { w.succeed(m) }
            callback?(m)
        case .failure(let e):
            for w in waiters { w.fail(e) }
            // A program that cannot start at all (not installed) is not retried in a loop:
            // the operator has to act. Others (it died during the handshake) are.
            if case .notInstalled = e { return }
            scheduleRestart()
        }
    }

    private func runOnce() throws(ManagedTransportError) -> Method {
        guard let path = Self.locate(settings.binary) else {
            throw .notInstalled(settings.configKey, settings.binary)
        }
        do {
            try FileManager.default.createDirectory(atPath: settings.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: settings.stateDirectory)
        } catch {
            throw .stateDirectory(settings.configKey, settings.stateDirectory, "\(error)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        // MONTANA_PT_LOG=INFO|DEBUG: obfs4proxy logs to obfs4proxy.log in its state directory
        // (it may name addresses; for debugging only).
        if let level = ProcessInfo.processInfo.environment["MONTANA_PT_LOG"], ["ERROR", "WARN", "INFO", "DEBUG"].contains(level) {
            process.arguments = ["-enableLogging", "-logLevel", level]
        } else {
            process.arguments = []
        }
        process.environment = environment(cookieDir: settings.stateDirectory)
        let stdout = Pipe(), stdin = Pipe()
        process.standardOutput = stdout
        process.standardInput = stdin
        process.standardError = FileHandle.nullDevice
        process.terminationHandler = { [weak self] p in self?.terminated(p, stdin: stdin) }
        let stopped = state.withLockedValue { s -> Bool in
            if !s.stopped { s.process = process; s.method = nil }
            return s.stopped
        }
        if stopped { throw .stopped(settings.configKey) }
        do { try process.run() } catch {
            throw .notInstalled(settings.configKey, "\(path) (\(error))")
        }
        // Read the handshake on this thread, with a deadline enforced by killing the program.
        let pid = process.processIdentifier
        let timeout = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.handshakeTimeout, execute: timeout)
        defer { timeout.cancel() }
        let handle = stdout.fileHandleForReading
        var reader = PTLineReader()
        var lines = 0
        var method: Method?
        var versionSeen = false
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty {
                throw .died(settings.configKey, "exited before reporting its methods (status \(process.isRunning ? 0 : process.terminationStatus))")
            }
            for line in reader.feed(chunk) {
                lines += 1
                guard lines <= Self.maxHandshakeLines else {
                    kill(pid, SIGKILL)
                    throw .protocolError(settings.configKey, "more than \(Self.maxHandshakeLines) lines before DONE")
                }
                guard case .line(let text) = line else {
                    kill(pid, SIGKILL)
                    throw .protocolError(settings.configKey, "a line longer than \(PTLineReader.maxLine) bytes")
                }
                let message: PTMessage
                do { message = try PTMessage.parse(text) } catch {
                    kill(pid, SIGKILL)
                    throw .protocolError(settings.configKey, "\(error)")
                }
                switch message {
                case .version(let v):
                    guard v == "1" else { kill(pid, SIGKILL); throw .protocolError(settings.configKey, "unsupported PT version \(v.prefix(16))") }
                    versionSeen = true
                case .versionError(let why):
                    kill(pid, SIGKILL)
                    throw .refused(settings.configKey, "VERSION-ERROR \(why.prefix(200))")
                case .envError(let why):
                    kill(pid, SIGKILL)
                    throw .refused(settings.configKey, "ENV-ERROR \(why.prefix(200))")
                case .smethodError(_, let why), .cmethodError(_, let why):
                    kill(pid, SIGKILL)
                    throw .refused(settings.configKey, "the transport refused: \(why.prefix(200))")
                case .smethod(let t, let host, let port, let args) where t == settings.transport:
                    method = Method(host: host, port: port, args: args)
                case .cmethod(let t, let proxy, let host, let port) where t == settings.transport:
                    guard proxy == "socks5" else { kill(pid, SIGKILL); throw .protocolError(settings.configKey, "CMETHOD proxy \(proxy.prefix(16)), expected socks5") }
                    method = Method(host: host, port: port, args: [:])
                case .smethodsDone, .cmethodsDone:
                    guard versionSeen, let method else {
                        kill(pid, SIGKILL)
                        throw .protocolError(settings.configKey, "DONE without VERSION 1 and a \(settings.transport) method")
                    }
                    drain(handle)
                    return method
                default:
                    continue
                }
            }
        }
    }

    /// Keeps reading (and dropping) the program's stdout so it never blocks on a full pipe.
    private func drain(_ handle: FileHandle) {
        let thread = Thread {
            while !handle.availableData.isEmpty {}
        }
        thread.start()
    }

    private func terminated(_ process: Process, stdin: Pipe) {
        try? stdin.fileHandleForWriting.close()
        let (current, stopped) = state.withLockedValue { s -> (Bool, Bool) in
            let current = s.process === process
            if current { s.method = nil }
            return (current, s.stopped)
        }
        guard current, !stopped else { return }
        let status = process.terminationStatus
        logger.warning("the pluggable transport exited; restarting it", metadata: ["config": "\(settings.configKey)", "status": "\(status)"])
        onDied.withLockedValue { $0 }?(status)
        scheduleRestart()
    }

    private func scheduleRestart() {
        let delay: TimeInterval? = state.withLockedValue { s in
            guard !s.stopped, !s.starting, s.restartPending == nil else { return nil }
            if let started = s.startedAt, Date().timeIntervalSince(started) > 60 { s.backoff = 1 }
            let d = s.backoff
            s.backoff = min(Self.maxBackoff, s.backoff * 2)
            s.restarts += 1
            let item = DispatchWorkItem { [weak self] in
                guard let self else { return }
                let go = self.state.withLockedValue { s -> Bool in
                    s.restartPending = nil
                    guard !s.stopped, !s.starting else { return false }
                    if s.process?.isRunning == true { return false }
                    s.starting = true
                    return true
                }
                if go { self.launch() }
            }
            s.restartPending = item
            DispatchQueue.global().asyncAfter(deadline: .now() + d, execute: item)
            return d
        }
        if let delay { logger.info("pluggable transport restart scheduled", metadata: ["config": "\(settings.configKey)", "in_s": "\(delay)"]) }
    }
}

public enum ManagedTransportError: Error, Equatable, Sendable, CustomStringConvertible {
    case notInstalled(String, String)
    case stateDirectory(String, String, String)
    case died(String, String)
    case refused(String, String)
    case protocolError(String, String)
    case stopped(String)

    public var description: String {
        switch self {
        case .notInstalled(let key, let binary):
            return "\(key): \(binary) not found on PATH or not executable; apt-get install obfs4proxy (or set binary = \"/path/to/obfs4proxy\")"
        case .stateDirectory(let key, let dir, let why): return "\(key): cannot create the state directory \(dir): \(why)"
        case .died(let key, let why): return "\(key): obfs4proxy \(why)"
        case .refused(let key, let why): return "\(key): obfs4proxy: \(why)"
        case .protocolError(let key, let why): return "\(key): obfs4proxy broke the PT 1.0 protocol: \(why)"
        case .stopped(let key): return "\(key): the pluggable transport is stopped"
        }
    }
}
