import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Plain POSIX sockets on loopback: free ports, readiness checks and raw probes.
enum Net {
    /// A free loopback TCP port: bind port 0, read it back, release it.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var addr = loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw E2EError("could not bind a free loopback port: errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func loopback(port: Int, host: String = "127.0.0.1") -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return addr
    }

    /// A connected blocking socket to 127.0.0.1:port, or nil.
    static func connectLoopback(_ port: Int, host: String = "127.0.0.1") -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = loopback(port: port, host: host)
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !ok {
            close(fd)
            return nil
        }
        return fd
    }

    static func canConnect(_ port: Int) -> Bool {
        guard let fd = connectLoopback(port) else { return false }
        close(fd)
        return true
    }

    /// Waits until something accepts on `port`; `alive` stops the wait early when the
    /// process that should listen has died.
    static func waitForListener(_ port: Int, timeout: TimeInterval, alive: () -> Bool = { true }) -> Bool {
        poll(timeout: timeout, interval: 0.05) { canConnect(port) || !alive() } && canConnect(port)
    }

    /// What a raw probe saw.
    struct Exchange {
        var received: [UInt8] = []
        /// The peer closed (EOF or reset) within the window.
        var closedByPeer = false
        var elapsed: TimeInterval = 0
    }

    /// A connected blocking socket from `source` (a loopback address such as 127.0.2.1) to
    /// 127.0.0.1:port, with `timeout` as its send timeout (it also bounds the connect), or nil.
    static func connect(from source: String, host: String = "127.0.0.1", port: Int, timeout: TimeInterval) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        local.sin_port = 0
        var remote = loopback(port: port, host: host)
        let ok = withUnsafePointer(to: &local) { l in
            l.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && withUnsafePointer(to: &remote) { r in
            r.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Sends all of `bytes` on `fd`; false once a send fails.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// What is already waiting on `fd` (never blocks).
    static func drain(_ fd: Int32) -> Exchange {
        var result = Exchange()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                result.received += buffer[0..<n]
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { result.closedByPeer = true }
            return result
        }
    }

    /// Collects what arrives on `fd` until `window` passes, the peer closes, or `stopAfter`
    /// bytes arrived (then it waits `settle` more for extras; 0 stops at once).
    static func receive(_ fd: Int32, window: TimeInterval, stopAfter: Int? = nil, settle: TimeInterval = 0) -> Exchange {
        var result = Exchange()
        let start = Date()
        var deadline = start.addingTimeInterval(window)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remainingMs = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            let ready = Glibc.poll(&pfd, 1, remainingMs)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 {
                result.closedByPeer = true
                break
            }
            result.received += buffer[0..<n]
            if let stopAfter, result.received.count >= stopAfter {
                if settle <= 0 { break }
                deadline = min(deadline, Date().addingTimeInterval(settle))
            }
        }
        result.elapsed = Date().timeIntervalSince(start)
        return result
    }

    /// Connects to `port`, sends `bytes`, and collects what comes back until `window` passes,
    /// the peer closes, or `stopAfter` bytes arrived (then it waits `settle` more for extras).
    static func exchange(host: String = "127.0.0.1", port: Int, send bytes: [UInt8], window: TimeInterval, stopAfter: Int? = nil,
                         settle: TimeInterval = 0.5) throws -> Exchange {
        guard let fd = connectLoopback(port, host: host) else { throw E2EError("cannot connect to \(host):\(port)") }
        defer { close(fd) }
        guard sendAll(fd, bytes) else { throw E2EError("send to \(host):\(port) failed: errno \(errno)") }
        return receive(fd, window: window, stopAfter: stopAfter, settle: settle)
    }
}
