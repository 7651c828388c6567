import Logging
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore

/// Which protocols a local listening port speaks.
public enum LocalProxyKind: String, Sendable {
    case socks5, http, mixed
}

/// One app connection to the local proxy: SOCKS5 (CONNECT, domain names passed to the exit,
/// optional RFC 1929 auth), HTTP proxy (CONNECT and absolute-URI), or either on a mixed port.
/// The proxy username picks the exit per connection (`country-de`, `node-<hex>`, `auto`).
final class LocalProxyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case detecting
        case socks(SOCKS5ServerHandshake)
        case http(HTTPProxyRequestParser)
        case connecting
        case relaying(EgressPipe)
        case udp(UDPAssociation)
        case closed
    }

    private let kind: LocalProxyKind
    private let manager: CircuitManager
    private let auth: ProxyCredentials?
    private let logger: Logger
    private var state: State
    private var selection = ExitSelection.automatic

    init(kind: LocalProxyKind, manager: CircuitManager, auth: ProxyCredentials?, logger: Logger) {
        self.kind = kind
        self.manager = manager
        self.auth = auth
        self.logger = logger
        switch kind {
        case .socks5: state = .socks(SOCKS5ServerHandshake(credentialsRequired: auth != nil))
        case .http: state = .http(HTTPProxyRequestParser())
        case .mixed: state = .detecting
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .detecting:
            guard let first = buffer.readableBytesView.first else { return }
            switch ProxyProtocol(firstByte: first) {
            case .socks5: state = .socks(SOCKS5ServerHandshake(credentialsRequired: auth != nil))
            case .http: state = .http(HTTPProxyRequestParser())
            default:
                context.close(promise: nil)
                return
            }
            channelRead(context: context, data: data)
        case .socks(var handshake):
            handshake.receive(buffer.readableBytesView)
            state = .socks(handshake)
            advanceSOCKS(context)
        case .http(var parser):
            parser.receive(buffer.readableBytesView)
            state = .http(parser)
            advanceHTTP(context)
        case .connecting:
            // The app should wait for our reply; bytes sent early are a protocol error for SOCKS
            // and are not expected for HTTP CONNECT.
            context.close(promise: nil)
        case .relaying(let pipe):
            _ = pipe.appRead(buffer)  // a paused pipe resumes reading itself on writable
        case .udp:
            return  // the control connection carries nothing after the reply
        case .closed:
            return
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch state {
        case .relaying(let pipe):
            if !pipe.appReadPaused { context.read() }
        case .detecting, .socks, .http, .udp:
            context.read()
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            if case .relaying(let pipe) = state { pipe.appEOF() } else { context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .relaying(let pipe) = state { pipe.appClosed() }
        if case .udp(let association) = state { association.close() }
        state = .closed
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func write(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    // MARK: SOCKS5

    private func advanceSOCKS(_ context: ChannelHandlerContext) {
        while case .socks(var handshake) = state {
            let step: SOCKS5ServerHandshake.Step
            do {
                step = try handshake.next()
            } catch {
                logger.debug("SOCKS5 handshake refused", metadata: ["error": "\(error)"])
                context.close(promise: nil)
                return
            }
            switch step {
            case .needMoreBytes:
                state = .socks(handshake)
                return
            case .send(let bytes):
                state = .socks(handshake)
                write(context, bytes)
            case .authenticate(let credentials):
                let ok = accept(credentials)
                state = .socks(handshake)
                do {
                    let next = try handshake.completeAuthentication(accepted: ok)
                    state = .socks(handshake)
                    if case .send(let bytes) = next { write(context, bytes) }
                    if case .sendAndClose(let bytes, _) = next {
                        write(context, bytes)
                        context.close(promise: nil)
                        return
                    }
                } catch {
                    context.close(promise: nil)
                    return
                }
            case .sendAndClose(let bytes, let refusal):
                logger.debug("SOCKS5 refused", metadata: ["reason": "\(refusal.rawValue)"])
                write(context, bytes)
                context.close(promise: nil)
                return
            case .request(let request, let leftover):
                if request.command == .udpAssociate {
                    associateUDP(context)
                    return
                }
                state = .connecting
                dial(context, address: request.address, port: request.port, optimistic: leftover) { [self] outcome in
                    let code: SOCKS5Reply.Code
                    switch outcome {
                    case .answered(let status): code = SOCKS5Reply.Code(status: status)
                    case .limited: code = .generalFailure
                    case .failed(let failure): code = failure.socksCode
                    }
                    write(context, SOCKS5Reply(code: code).encode())
                    if code != .succeeded { context.close(promise: nil) }
                }
                return
            }
        }
    }

    /// UDP ASSOCIATE: a relay socket on the address the app reached us at; it lives as long as
    /// this control connection.
    private func associateUDP(_ context: ChannelHandlerContext) {
        state = .connecting
        let association = UDPAssociation(manager: manager, selection: selection, logger: logger)
        let host = context.channel.localAddress?.ipAddress ?? "127.0.0.1"
        association.start(on: context.eventLoop, host: host).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let address):
                state = .udp(association)
                let bound: EgressAddress
                if case .v6(let a) = address {
                    bound = .ipv6(withUnsafeBytes(of: a.address.sin6_addr) { Array($0) })
                } else if case .v4(let a) = address {
                    bound = .ipv4(withUnsafeBytes(of: a.address.sin_addr) { Array($0) })
                } else {
                    bound = .ipv4([127, 0, 0, 1])
                }
                write(context, SOCKS5Reply(code: .succeeded, boundAddress: bound, boundPort: UInt16(exactly: address.port ?? 0) ?? 0).encode())
                context.read()
            case .failure:
                write(context, SOCKS5Reply(code: .generalFailure).encode())
                context.close(promise: nil)
            }
        }
    }

    private func accept(_ credentials: ProxyCredentials) -> Bool {
        if let auth {
            guard credentials.password == auth.password else { return false }
            if credentials.username == auth.username { return true }
        }
        do {
            selection = try ExitSelection.parse(username: credentials.username)
            return true
        } catch {
            logger.notice("local proxy username is not an exit selection", metadata: ["error": "\(error)"])
            return false
        }
    }

    // MARK: HTTP

    private func advanceHTTP(_ context: ChannelHandlerContext) {
        guard case .http(var parser) = state else { return }
        let step: HTTPProxyRequestParser.Step
        do {
            step = try parser.next()
        } catch {
            write(context, error.response)
            context.close(promise: nil)
            return
        }
        state = .http(parser)
        guard case .request(let request, let leftover) = step else { return }
        if let credentials = request.credentials {
            guard accept(credentials) else {
                write(context, HTTPProxyResponse.proxyAuthenticationRequired)
                context.close(promise: nil)
                return
            }
        } else if auth != nil {
            write(context, HTTPProxyResponse.proxyAuthenticationRequired)
            context.close(promise: nil)
            return
        }
        state = .connecting
        let address = EgressAddress.host(request.host)
        var optimistic = leftover
        if case .forward(let head) = request.kind { optimistic = head + leftover }
        var forward = false
        if case .forward = request.kind { forward = true }
        dial(context, address: address, port: request.port, optimistic: optimistic, reportsAfterEarlyAnswer: forward) { [self] outcome in
            switch outcome {
            case .answered(.open):
                if case .connect = request.kind { write(context, HTTPProxyResponse.connectionEstablished) }
            case .answered(.refusedByPolicy):
                write(context, HTTPProxyResponse.badGateway("refused by the exit's policy"))
                context.close(promise: nil)
            case .answered(.rateLimited):
                write(context, HTTPProxyResponse.badGateway("the exit is rate-limiting this session"))
                context.close(promise: nil)
            case .limited(let why):
                write(context, HTTPProxyResponse.badGateway(why))
                context.close(promise: nil)
            case .answered(.unreachable):
                write(context, HTTPProxyResponse.gatewayTimeout("the exit could not reach the destination"))
                context.close(promise: nil)
            case .failed(let failure):
                write(context, failure.httpResponse)
                context.close(promise: nil)
            }
        }
    }

    // MARK: egress

    /// How a dial ended: the exit answered the EgressOpen, or the client could not get that far.
    enum DialOutcome {
        case answered(EgressOpenStatus)
        /// Status 3, with the reason the exit gave (`/montana/account/1.0.0`).
        case limited(String)
        case failed(DialFailure)
    }

    /// Why a connection never reached the exit; each maps to a SOCKS5 reply code and an HTTP answer.
    enum DialFailure {
        /// The destination cannot be carried in an EgressOpen (e.g. a host name over 255 bytes).
        case invalidDestination(String)
        case noExit(String)
        /// Only the exit itself could be the front and `exit_as_front` is off.
        case exitAsFrontRequired
        case noSession(String)
        case streamRefused

        var socksCode: SOCKS5Reply.Code {
            switch self {
            case .invalidDestination: return .addressTypeNotSupported
            case .noExit, .noSession: return .networkUnreachable
            // "connection not allowed by ruleset": the user's own privacy rule refused it.
            case .exitAsFrontRequired: return .connectionNotAllowed
            case .streamRefused: return .generalFailure
            }
        }

        var httpResponse: [UInt8] {
            switch self {
            case .invalidDestination(let why): return HTTPProxyResponse.badRequest("invalid destination: \(why)")
            case .noExit(let why): return HTTPProxyResponse.badGateway(why)
            case .exitAsFrontRequired: return HTTPProxyResponse.badGateway(CircuitManagerError.exitAsFrontRequired.description)
            case .noSession(let why): return HTTPProxyResponse.badGateway("no route to the exit: \(why)")
            case .streamRefused: return HTTPProxyResponse.badGateway("the exit refused the egress stream")
            }
        }
    }

    /// `retried`: this is the second attempt, after the first session went silent before the
    /// exit answered (a black-holed carrier): the app's bytes never reached the exit, so one more
    /// try on a new session (through another front) is safe.
    /// `reportsAfterEarlyAnswer`: an early (optimistic) answer wrote nothing the app sees (an HTTP
    /// request forwarded to an absolute URI), so a refusal can still be answered with its reason.
    private func dial(_ context: ChannelHandlerContext, address: EgressAddress, port: UInt16, optimistic: [UInt8],
                      retried: Bool = false, reportsAfterEarlyAnswer: Bool = false, reply: @escaping (DialOutcome) -> Void) {
        do {
            try address.validate()
        } catch {
            logger.debug("destination cannot be sent to an exit", metadata: ["error": "\(error)"])
            reply(.failed(.invalidDestination("\(error)")))
            return
        }
        let exit: AllianceMember
        do {
            exit = try manager.chooseExit(selection)
        } catch {
            logger.notice("no exit for this connection", metadata: ["error": "\(error)"])
            reply(.failed(.noExit("\(error)")))
            return
        }
        let channel = context.channel
        manager.session(to: exit).assumeIsolated().whenComplete { [self] result in
            guard channel.isActive else { return }
            switch result {
            case .failure(CircuitManagerError.passRefused(let why)):
                logger.warning("\(why)", metadata: ["exit": "\(exit.label)"])
                reply(.failed(.noExit(why)))
            case .failure(CircuitManagerError.exitAsFrontRequired):
                // The user must see this one: it names the setting that would fix it.
                logger.warning("\(CircuitManagerError.exitAsFrontRequired)", metadata: ["exit": "\(exit.label)"])
                reply(.failed(.exitAsFrontRequired))
            case .failure(CircuitManagerError.unreachableFromHere(let why)):
                // The user must see this one: nothing on this network reaches a front.
                logger.warning("\(why)")
                reply(.failed(.noSession(why)))
            case .failure(let error):
                logger.notice("no session to the exit", metadata: ["exit": "\(exit.label)", "error": "\(error)"])
                reply(.failed(.noSession("\(error)")))
            case .success(let session):
                var pipe: EgressPipe?
                let stream = session.mux.openStream(protocol: EgressMessage.protocolID) { accepted in
                    if !accepted { reply(.failed(.streamRefused)) }
                }
                guard let stream else {
                    reply(.failed(.streamRefused))
                    return
                }
                let p = EgressPipe(stream: stream, session: session, app: channel)
                pipe = p
                // Answered before the exit did (optimistic_connect): the app's bytes follow the
                // EgressOpen at once; a refusal can then only close the app's connection.
                let early = !retried && manager.answersOptimistically(session, address: address, port: port)
                do {
                    try p.open(address: address, port: port, optimistic: optimistic) { [self] status in
                        manager.exitAnswered(status, exit: exit.nodeID, address: address, port: port)
                        if early, status == .open { return }
                        if early, !reportsAfterEarlyAnswer {
                            logger.notice("the exit refused a connection the proxy had already answered; closing it",
                                          metadata: ["exit": "\(exit.label)", "status": "\(status)"])
                            channel.close(promise: nil)
                            return
                        }
                        if status == .open, let pipe {
                            state = .relaying(pipe)
                            channel.read()
                        }
                        if status == .unreachable, p.sessionLostBeforeAck, let why = session.unreachableFromHere {
                            logger.warning("\(why)")
                            return reply(.failed(.noSession(why)))
                        }
                        if status == .unreachable, p.sessionLostBeforeAck, session.lostItsCarrier {
                            guard !retried else { return reply(.failed(.noSession("the circuit to the exit went silent twice"))) }
                            // App bytes already followed an early answer: they cannot be sent again.
                            guard !early else { return reply(.failed(.noSession("the circuit to the exit went silent before it answered"))) }
                            logger.info("the session went silent before the exit answered; retrying on a new session", metadata: ["exit": "\(exit.label)"])
                            return dial(context, address: address, port: port, optimistic: optimistic, retried: true,
                                        reportsAfterEarlyAnswer: reportsAfterEarlyAnswer, reply: reply)
                        }
                        if status == .unreachable, p.sessionLostBeforeAck {
                            let why = "the exit closed the session without answering: it refused this account (a pass may be required, or the pass was refused)"
                            logger.warning("\(why)", metadata: ["exit": "\(exit.label)"])
                            return reply(.limited(why))
                        }
                        guard status == .rateLimited else { return reply(.answered(status)) }
                        // Status 3 has many causes; the exit says which one it is for this account.
                        manager.accountStatus(session).assumeIsolated().whenComplete { [self] result in
                            if case .success(let account?) = result, account.quotaUsedUp {
                                let why = "your pass's quota at this exit is used up (\(account.usedBytes) of \(account.quotaBytes) bytes)"
                                logger.warning("\(why)", metadata: ["exit": "\(exit.label)"])
                                reply(.limited(why))
                            } else {
                                reply(.answered(status))
                            }
                        }
                    }
                } catch {
                    stream.reset()
                    reply(.failed(.invalidDestination("\(error)")))
                    return
                }
                if early {
                    state = .relaying(p)
                    reply(.answered(.open))
                    channel.read()
                }
            }
        }
    }
}
