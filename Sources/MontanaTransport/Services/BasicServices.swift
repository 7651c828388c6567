import MontanaSession
import NIOCore

/// `/ipfs/ping/1.0.0`: echoes 32-byte payloads (latency probes).
public struct PingService: StreamService {
    public let protocolName = "/ipfs/ping/1.0.0"
    public init() {}

    public func serve(_ stream: MuxStream, session: MuxHandler) {
        let echo = PingEcho(stream: stream)
        stream.onData = { buffer in echo.receive(buffer) }
        stream.onWritable = { echo.drain() }
        stream.onEnd = { [weak stream] end in
            if end == .remoteFinished { stream?.closeWrite() }
        }
        stream.startReading()
    }
}

/// One ping stream. Echoes only while the stream is writable and reports bytes consumed only once
/// they were echoed; a peer that keeps sending while its answers cannot go out (it grants no
/// window or does not read) has its stream reset once 1 KiB of pings is unanswered. What a ping
/// stream holds is bounded by that and the stream's backlog, not by how much the peer sends.
final class PingEcho {
    static let payloadSize = 32
    private weak var stream: MuxStream?
    private var pending = ByteBuffer()

    init(stream: MuxStream) {
        self.stream = stream
    }

    func receive(_ buffer: ByteBuffer) {
        var buffer = buffer
        pending.writeBuffer(&buffer)
        drain()
        if pending.readableBytes > ControlSessionLimits.unansweredPingBytes { stream?.reset() }
    }

    /// Echoes every whole ping held, in one write (one record, one window update): answering
    /// ping by ping would cost a record and an AEAD seal per 32 bytes.
    func drain() {
        guard let stream, stream.isWritable else { return }
        let whole = pending.readableBytes - pending.readableBytes % Self.payloadSize
        guard whole > 0, let echo = pending.readSlice(length: whole) else { return }
        stream.write(echo)
        stream.consumed(whole)
        pending.discardReadBytes()
    }
}

/// `/montana/ip-echo/1.0.0`: answers with the address this node sees for the carrier
/// (16-byte IPv6 or v4-mapped ‖ u16 LE port, uvarint-length-prefixed), then closes.
public struct IPEchoService: StreamService {
    public let protocolName = "/montana/ip-echo/1.0.0"
    private let remote: @Sendable () -> SocketAddress?

    public init(remote: @escaping @Sendable () -> SocketAddress?) {
        self.remote = remote
    }

    public static func encode(_ address: SocketAddress?) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 18)
        switch address {
        case .v4(let a)?:
            let ip = a.address.sin_addr.s_addr  // network order in memory
            withUnsafeBytes(of: ip) { raw in
                out[10] = 0xff
                out[11] = 0xff
                for i in 0..<4 { out[12 + i] = raw[i] }
            }
            let port = UInt16(bigEndian: a.address.sin_port)
            out[16] = UInt8(port & 0xff)
            out[17] = UInt8(port >> 8)
        case .v6(let a)?:
            withUnsafeBytes(of: a.address.sin6_addr) { raw in
                for i in 0..<16 { out[i] = raw[i] }
            }
            let port = UInt16(bigEndian: a.address.sin6_port)
            out[16] = UInt8(port & 0xff)
            out[17] = UInt8(port >> 8)
        default:
            break
        }
        return out
    }

    public func serve(_ stream: MuxStream, session: MuxHandler) {
        stream.onData = { [weak stream] b in stream?.consumed(b.readableBytes) }
        stream.write(LengthPrefixedDecoder.frame(Self.encode(remote())))
        stream.closeWrite()
        stream.startReading()
    }
}
