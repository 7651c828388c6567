import MontanaWire

/// The server side of a SOCKS5 handshake (RFC 1928, RFC 1929) as a sans-I/O state machine:
/// feed bytes with `receive`, then call `next()` until it says `.needMoreBytes` or the handshake
/// ends. Bytes may arrive in any fragments; whatever follows the request is handed back.
public struct SOCKS5ServerHandshake: Sendable {
    public enum AuthenticationMethod: UInt8, Sendable {
        case noAuthentication = 0x00
        case usernamePassword = 0x02
        case noAcceptableMethods = 0xff
    }

    public enum Step: Equatable, Sendable {
        case needMoreBytes
        /// Write these bytes, then call `next()` again.
        case send([UInt8])
        /// RFC 1929 credentials arrived: check them, then call `completeAuthentication(accepted:)`.
        case authenticate(ProxyCredentials)
        /// The handshake is done. Serve the request and answer with a `SOCKS5Reply`; `leftover`
        /// is data the client sent without waiting for the reply.
        case request(SOCKS5Request, leftover: [UInt8])
        /// Write these bytes, then close the connection.
        case sendAndClose([UInt8], Refusal)
    }

    /// A refusal the protocol answers before closing; the label is for metrics and logs.
    public enum Refusal: String, Equatable, Sendable {
        case noAcceptableAuthenticationMethod = "no_acceptable_method"
        case authenticationFailed = "auth_failed"
        case commandNotSupported = "command_not_supported"
        case addressTypeNotSupported = "address_type_not_supported"
    }

    private enum State {
        case greeting, credentials, awaitingAuthenticationResult, request, finished
    }

    public let credentialsRequired: Bool
    public private(set) var selectedMethod: AuthenticationMethod?
    private var state = State.greeting
    private var buffer: [UInt8] = []

    public init(credentialsRequired: Bool) {
        self.credentialsRequired = credentialsRequired
    }

    public mutating func receive<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() throws(SOCKS5Error) -> Step {
        switch state {
        case .greeting: return try readGreeting()
        case .credentials: return try readCredentials()
        case .awaitingAuthenticationResult: return .needMoreBytes
        case .request: return try readRequest()
        case .finished: throw .callOutOfOrder
        }
    }

    /// The caller's verdict on the credentials from `.authenticate`.
    public mutating func completeAuthentication(accepted: Bool) throws(SOCKS5Error) -> Step {
        guard state == .awaitingAuthenticationResult else { throw .callOutOfOrder }
        guard accepted else {
            state = .finished
            return .sendAndClose([0x01, 0x01], .authenticationFailed)
        }
        state = .request
        return .send([0x01, 0x00])
    }

    /// `VER ‖ NMETHODS ‖ METHODS`
    private mutating func readGreeting() throws(SOCKS5Error) -> Step {
        guard buffer.count >= 2 else { return .needMoreBytes }
        guard buffer[0] == 0x05 else { throw .unsupportedVersion(buffer[0]) }
        let end = 2 + Int(buffer[1])
        guard buffer.count >= end else { return .needMoreBytes }
        let offered = buffer[2..<end]
        consume(end)
        // Username/password whenever offered: usernames carry the exit selection.
        let method: AuthenticationMethod
        if offered.contains(AuthenticationMethod.usernamePassword.rawValue) {
            method = .usernamePassword
        } else if !credentialsRequired, offered.contains(AuthenticationMethod.noAuthentication.rawValue) {
            method = .noAuthentication
        } else {
            method = .noAcceptableMethods
        }
        selectedMethod = method
        switch method {
        case .usernamePassword: state = .credentials
        case .noAuthentication: state = .request
        case .noAcceptableMethods:
            state = .finished
            return .sendAndClose([0x05, method.rawValue], .noAcceptableAuthenticationMethod)
        }
        return .send([0x05, method.rawValue])
    }

    /// `VER(1) ‖ ULEN ‖ UNAME ‖ PLEN ‖ PASSWD`. Empty fields are accepted: an empty username
    /// means automatic exit selection.
    private mutating func readCredentials() throws(SOCKS5Error) -> Step {
        guard buffer.count >= 2 else { return .needMoreBytes }
        guard buffer[0] == 0x01 else { throw .unsupportedAuthenticationVersion(buffer[0]) }
        let usernameEnd = 2 + Int(buffer[1])
        guard buffer.count > usernameEnd else { return .needMoreBytes }
        let passwordEnd = usernameEnd + 1 + Int(buffer[usernameEnd])
        guard buffer.count >= passwordEnd else { return .needMoreBytes }
        let credentials = ProxyCredentials(username: String(decoding: buffer[2..<usernameEnd], as: UTF8.self),
                                           password: String(decoding: buffer[(usernameEnd + 1)..<passwordEnd], as: UTF8.self))
        consume(passwordEnd)
        state = .awaitingAuthenticationResult
        return .authenticate(credentials)
    }

    /// `VER ‖ CMD ‖ RSV ‖ ATYP ‖ DST.ADDR ‖ DST.PORT`
    private mutating func readRequest() throws(SOCKS5Error) -> Step {
        guard buffer.count >= 2 else { return .needMoreBytes }
        guard buffer[0] == 0x05 else { throw .unsupportedVersion(buffer[0]) }
        guard let command = SOCKS5Request.Command(rawValue: buffer[1]) else {
            state = .finished
            return .sendAndClose(SOCKS5Reply(code: .commandNotSupported).encode(), .commandNotSupported)
        }
        // RSV is not checked: some clients leave garbage there and nothing depends on it.
        guard buffer.count >= 4 else { return .needMoreBytes }
        switch try SOCKS5Address.read(buffer, from: 3) {
        case .needMoreBytes:
            return .needMoreBytes
        case .unknownAddressType:
            state = .finished
            return .sendAndClose(SOCKS5Reply(code: .addressTypeNotSupported).encode(), .addressTypeNotSupported)
        case .address(let address, let port, let end):
            let leftover = Array(buffer[end...])
            buffer = []
            state = .finished
            return .request(SOCKS5Request(command: command, address: address, port: port), leftover: leftover)
        }
    }

    private mutating func consume(_ count: Int) {
        buffer.removeFirst(count)
    }
}
