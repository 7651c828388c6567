/// A parsed proxy request head.
public struct HTTPProxyRequest: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// `CONNECT host:port`: answer `HTTPProxyResponse.connectionEstablished`, then splice.
        case connect
        /// An absolute-URI request: send `originFormHead` to the target, then splice.
        /// It ends with `Connection: close` (unless upgrading) so that the next request on the
        /// client connection, possibly for another host, comes as a fresh proxy connection.
        case forward(originFormHead: [UInt8])
    }

    public var kind: Kind
    public var method: String
    /// A name or an IP literal (IPv6 without brackets); the exit resolves and checks it.
    public var host: String
    public var port: UInt16
    /// From `Proxy-Authorization: Basic`; nil when absent or another scheme.
    public var credentials: ProxyCredentials?

    public init(kind: Kind, method: String, host: String, port: UInt16, credentials: ProxyCredentials?) {
        self.kind = kind
        self.method = method
        self.host = host
        self.port = port
        self.credentials = credentials
    }
}
