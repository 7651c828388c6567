import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The machine's IPv4 TCP sockets from /proc/net/tcp: how a test sees which local address and
/// ephemeral port a process really connected from, without trusting the process to say.
enum ProcNetTCP {
    struct Socket: Equatable {
        let localHost: String
        let localPort: Int
        let remoteHost: String
        let remotePort: Int
        /// The kernel's state code: 0x01 is ESTABLISHED.
        let state: Int

        var isEstablished: Bool { state == 0x01 }
    }

    static func sockets() -> [Socket] {
        let text = String(decoding: readAll("/proc/net/tcp"), as: UTF8.self)
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, let local = endpoint(fields[1]), let remote = endpoint(fields[2]),
                  let state = Int(fields[3], radix: 16) else { return nil }
            return Socket(localHost: local.host, localPort: local.port, remoteHost: remote.host, remotePort: remote.port, state: state)
        }
    }

    /// read(2) until EOF: procfs reports size 0 and Foundation's readers stop after one page.
    private static func readAll(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// Established connections from `localHost` to any of `remotePorts` on loopback.
    static func connections(from localHost: String, toPorts remotePorts: Set<Int>) -> [Socket] {
        sockets().filter { $0.isEstablished && $0.localHost == localHost && remotePorts.contains($0.remotePort) }
    }

    /// `0101007F:1F90`: the address as the kernel's little-endian u32 in hex, then the port.
    private static func endpoint(_ field: Substring) -> (host: String, port: Int)? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, parts[0].count == 8, let raw = UInt32(parts[0], radix: 16), let port = Int(parts[1], radix: 16) else {
            return nil
        }
        let bytes = withUnsafeBytes(of: raw.littleEndian) { Array($0) }
        return (bytes.map(String.init).joined(separator: "."), port)
    }
}
