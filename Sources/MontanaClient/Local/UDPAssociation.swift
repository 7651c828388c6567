import Logging
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore
import NIOPosix

/// One SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): a local UDP socket for the app, and one UDP
/// egress stream per destination, all on the session to the chosen exit. Lives as long as the
/// app's TCP control connection. Datagrams are dropped, never queued without bound.
final class UDPAssociation {
    static let maxQueuedPerFlow = 64

    private final class Flow {
        var stream: MuxStream?
        var open = false
        var queue: [[UInt8]] = []
        var decoder = LengthPrefixedDecoder()
    }

    private let manager: CircuitManager
    private let selection: ExitSelection
    private let logger: Logger
    private var channel: (any Channel)?
    /// The app's UDP address: the first sender; datagrams from anyone else are ignored.
    private var app: SocketAddress?
    private var flows: [String: Flow] = [:]
    private var closed = false

    init(manager: CircuitManager, selection: ExitSelection, logger: Logger) {
        self.manager = manager
        self.selection = selection
        self.logger = logger
    }

    /// Binds the local relay socket on the control connection's local address; reports its
    /// address for the SOCKS reply.
    func start(on loop: any EventLoop, host: String) -> EventLoopFuture<SocketAddress> {
        let boxed = NIOLoopBound(self, eventLoop: loop)
        return DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPAssociationHandler(association: boxed.value))
                }
            }
            .bind(host: host, port: 0)
            .flatMapThrowing { channel in
                boxed.value.channel = channel
                guard let address = channel.localAddress else { throw ChannelError.unknownLocalAddress }
                return address
            }
    }

    func received(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard !closed else { return }
        if app == nil { app = envelope.remoteAddress }
        guard envelope.remoteAddress == app else { return }
        guard let datagram = try? SOCKS5UDPDatagram.decode(Array(envelope.data.readableBytesView)),
              datagram.payload.count <= EgressMessage.maxPayload else { return }
        let key = "\(datagram.address)|\(datagram.port)"
        if let flow = flows[key] {
            send(datagram.payload, on: flow)
            return
        }
        let flow = Flow()
        flow.queue.append(datagram.payload)
        flows[key] = flow
        openFlow(flow, key: key, address: datagram.address, port: datagram.port)
    }

    private func openFlow(_ flow: Flow, key: String, address: EgressAddress, port: UInt16) {
        let exit: AllianceMember
        do {
            exit = try manager.chooseExit(selection)
        } catch {
            flows[key] = nil
            return
        }
        manager.session(to: exit).assumeIsolated().whenComplete { [self] result in
            guard !closed, case .success(let session) = result,
                  let stream = session.mux.openStream(protocol: EgressMessage.protocolID, negotiated: { [weak self] ok in
                      if !ok { self?.flows[key] = nil }
                  }) else {
                flows[key] = nil
                return
            }
            flow.stream = stream
            stream.onData = { [weak self, weak stream] buffer in
                guard let self, let stream else { return }
                flow.decoder.append(buffer)
                while let raw = try? flow.decoder.nextMessage() {
                    stream.consumed(LengthPrefixedDecoder.wireSize(bodyLength: raw.readableBytes))
                    guard let message = try? EgressMessage.decode(Array(raw.readableBytesView)) else { continue }
                    switch message {
                    case .openAck(_, .open):
                        flow.open = true
                        let queued = flow.queue
                        flow.queue = []
                        for payload in queued { self.send(payload, on: flow) }
                    case .openAck:
                        self.flows[key] = nil
                        stream.closeWrite()
                    case .data(_, let payload):
                        self.deliver(payload, from: address, port: port)
                    default:
                        break
                    }
                }
            }
            stream.onEnd = { [weak self] _ in self?.flows[key] = nil }
            guard let open = try? EgressMessage.open(EgressOpen(streamID: stream.id, transport: .udp, address: address, port: port)).encode() else {
                // A destination the wire cannot carry: drop the flow (UDP has no error reply).
                flows[key] = nil
                stream.reset()
                return
            }
            stream.write(LengthPrefixedDecoder.frame(open))
            stream.startReading()
        }
    }

    private func send(_ payload: [UInt8], on flow: Flow) {
        guard flow.open, let stream = flow.stream else {
            if flow.queue.count < Self.maxQueuedPerFlow { flow.queue.append(payload) }
            return
        }
        // Drop (UDP) when the stream is not writable or the payload cannot be one EgressData.
        guard stream.isWritable, let data = try? EgressMessage.data(streamID: stream.id, payload: payload).encode() else { return }
        stream.write(LengthPrefixedDecoder.frame(data))
    }

    private func deliver(_ payload: [UInt8], from address: EgressAddress, port: UInt16) {
        guard let channel, let app else { return }
        let datagram = SOCKS5UDPDatagram(address: address, port: port, payload: payload).encode()
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: app, data: ByteBuffer(bytes: datagram)), promise: nil)
    }

    /// The control connection closed: end every flow and the local socket.
    func close() {
        guard !closed else { return }
        closed = true
        for flow in flows.values {
            if let stream = flow.stream {
                if let close = try? EgressMessage.close(streamID: stream.id, reason: .normal).encode() {
                    stream.write(LengthPrefixedDecoder.frame(close))
                }
                stream.closeWrite()
            }
        }
        flows = [:]
        channel?.close(promise: nil)
        channel = nil
    }
}

final class UDPAssociationHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let association: UDPAssociation

    init(association: UDPAssociation) {
        self.association = association
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        association.received(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
