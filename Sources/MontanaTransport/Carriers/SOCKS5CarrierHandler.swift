import NIOCore

/// The client side of SOCKS5 (RFC 1928, username/password auth RFC 1929) towards a pluggable
/// transport's local proxy, which carries the PT arguments in the credentials (PT spec 1.0,
/// 3.5). It swallows `channelActive` and holds every write (at most `maxHeldBytes`) until the
/// proxy answered CONNECT, so the handlers behind it see an ordinary connection to the member
/// whose first bytes are theirs. Removes itself when done.
final class SOCKS5CarrierHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Writes held until the proxy connected: the preface and the session's first message are
    /// about 3 KiB; more than this is an error, never an unbounded buffer.
    static let maxHeldBytes = 256 * 1024
    /// A SOCKS reply is at most 4 + 1 + 255 + 2 bytes; anything longer before it is complete is
    /// not a SOCKS proxy.
    static let maxReplyBytes = 262

    private enum Step { case greeting, auth, connect, done }
    private let host: String
    private let port: Int
    private let username: [UInt8]
    private let password: [UInt8]
    private let ready: EventLoopPromise<Void>
    private let timeout: TimeAmount
    private var step = Step.greeting
    private var buffer: ByteBuffer?
    private var held: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var heldBytes = 0
    private var timer: Scheduled<Void>?

    init(host: String, port: Int, credentials: (username: [UInt8], password: [UInt8]), timeout: TimeAmount, ready: EventLoopPromise<Void>) {
        self.host = host
        self.port = port
        self.username = credentials.username
        self.password = credentials.password
        self.timeout = timeout
        self.ready = ready
    }

    /// PT 1.0 §3.5: `k=v;k=v` with `;`, `=` and `\` escaped; up to 255 bytes in the username,
    /// the rest in the password; a single NUL password when it all fits the username.
    static func credentials(_ args: [String: String]) -> (username: [UInt8], password: [UInt8]) {
        func escape(_ s: String) -> String {
            var out = ""
            for c in s {
                if c == ";" || c == "=" || c == "\\" { out.append("\\") }
                out.append(c)
            }
            return out
        }
        let text = args.keys.sorted().map { "\(escape($0))=\(escape(args[$0]!))" }.joined(separator: ";")
        let bytes = Array(text.utf8)
        if bytes.count <= 255 { return (bytes, [0]) }
        return (Array(bytes[0..<255]), Array(bytes[255...]))
    }

    func channelActive(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            fail(context, CarrierError.timedOut("obfs4 connection through the local pluggable transport"))
        }
        // Only username/password: the PT arguments travel in it.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0x05, 0x01, 0x02])), promise: nil)
        // The handlers behind may drive reads themselves (a session link with autoRead off) and
        // have not seen channelActive yet: the SOCKS exchange reads for itself.
        context.read()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if step == .done {
            context.fireChannelReadComplete()
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard step != .done else {
            context.write(data, promise: promise)
            return
        }
        let buffer = unwrapOutboundIn(data)
        heldBytes += buffer.readableBytes
        guard heldBytes <= Self.maxHeldBytes else {
            promise?.fail(CarrierError.socks("more than \(Self.maxHeldBytes) bytes written before the carrier was ready"))
            fail(context, CarrierError.socks("more than \(Self.maxHeldBytes) bytes written before the carrier was ready"))
            return
        }
        held.append((buffer, promise))
    }

    func flush(context: ChannelHandlerContext) {
        if step == .done { context.flush() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard step != .done else {
            context.fireChannelRead(data)
            return
        }
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        process(context)
    }

    private func process(_ context: ChannelHandlerContext) {
        guard var b = buffer else { return }
        switch step {
        case .greeting:
            guard let reply = b.readBytes(length: 2) else { return }
            buffer = b
            guard reply[0] == 0x05 else { return fail(context, CarrierError.socks("the local pluggable transport did not answer as a SOCKS5 proxy")) }
            guard reply[1] == 0x02 else { return fail(context, CarrierError.socks("the local pluggable transport refused username/password authentication (the PT arguments)")) }
            var auth: [UInt8] = [0x01, UInt8(username.count)] + username
            auth += [UInt8(password.count)] + password
            step = .auth
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: auth)), promise: nil)
            process(context)
        case .auth:
            guard let reply = b.readBytes(length: 2) else { return }
            buffer = b
            guard reply[1] == 0x00 else { return fail(context, CarrierError.socks("the local pluggable transport refused the PT arguments (cert, iat-mode)")) }
            step = .connect
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: connectRequest())), promise: nil)
            process(context)
        case .connect:
            guard b.readableBytes <= Self.maxReplyBytes + 64 * 1024 else { return fail(context, CarrierError.socks("the SOCKS5 reply is too long")) }
            guard let head = b.getBytes(at: b.readerIndex, length: 5) else { return }
            guard head[0] == 0x05 else { return fail(context, CarrierError.socks("the local pluggable transport sent a malformed SOCKS5 reply")) }
            guard head[1] == 0x00 else { return fail(context, CarrierError.socks(Self.replyText(head[1]))) }
            let addressLength: Int
            switch head[3] {
            case 0x01: addressLength = 4
            case 0x04: addressLength = 16
            case 0x03: addressLength = 1 + Int(head[4])
            default: return fail(context, CarrierError.socks("the SOCKS5 reply has address type \(head[3])"))
            }
            guard b.readBytes(length: 4 + addressLength + 2) != nil else { return }
            buffer = nil
            succeed(context, rest: b)
        case .done:
            break
        }
    }

    private func connectRequest() -> [UInt8] {
        var out: [UInt8] = [0x05, 0x01, 0x00]
        if let v4 = Self.ipv4(host) {
            out += [0x01] + v4
        } else if let v6 = Self.ipv6(host) {
            out += [0x04] + v6
        } else {
            let name = Array(host.utf8.prefix(255))
            out += [0x03, UInt8(name.count)] + name
        }
        out += [UInt8(truncatingIfNeeded: port >> 8), UInt8(truncatingIfNeeded: port)]
        return out
    }

    static func ipv4(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    static func ipv6(_ s: String) -> [UInt8]? {
        guard s.contains(":"), let address = try? SocketAddress(ipAddress: s, port: 0), case .v6(let a) = address else { return nil }
        return withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
    }

    /// RFC 1928 §6 reply codes in words (the front is what the proxy could not reach).
    static func replyText(_ code: UInt8) -> String {
        switch code {
        case 0x01: return "obfs4: general failure (the obfs4 handshake with the front failed or the front closed)"
        case 0x02: return "obfs4: connection not allowed by the local pluggable transport"
        case 0x03: return "obfs4: network unreachable"
        case 0x04: return "obfs4: host unreachable"
        case 0x05: return "obfs4: Connection refused by the front's T3 port"
        case 0x06: return "obfs4: timed out (TTL expired) reaching the front"
        case 0x07: return "obfs4: command not supported by the local pluggable transport"
        case 0x08: return "obfs4: address type not supported by the local pluggable transport"
        default: return "obfs4: SOCKS5 reply code \(code)"
        }
    }

    private func succeed(_ context: ChannelHandlerContext, rest: ByteBuffer) {
        step = .done
        timer?.cancel()
        let writes = held
        held = []
        context.fireChannelActive()
        for (buffer, promise) in writes { context.write(wrapOutboundOut(buffer), promise: promise) }
        context.flush()
        if rest.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        ready.succeed(())
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        guard step != .done else { return }
        step = .done
        timer?.cancel()
        for (_, p) in held { p?.fail(error) }
        held = []
        ready.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context, CarrierError.socks("obfs4: the local pluggable transport closed the connection (connection reset)"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, error)
        context.fireErrorCaught(error)
    }
}
