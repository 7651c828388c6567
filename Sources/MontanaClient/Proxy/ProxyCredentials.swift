/// A username and password from SOCKS5 (RFC 1929) or HTTP `Proxy-Authorization: Basic`.
/// The username also carries the exit selection (`ExitSelection`).
public struct ProxyCredentials: Equatable, Sendable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}
