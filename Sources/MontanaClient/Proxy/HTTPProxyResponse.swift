/// Responses the local HTTP proxy writes itself. All but 200 close the connection.
public enum HTTPProxyResponse {
    public static let connectionEstablished: [UInt8] = Array("HTTP/1.1 200 Connection Established\r\n\r\n".utf8)

    public static let proxyAuthenticationRequired: [UInt8] = plainText(
        status: 407, reason: "Proxy Authentication Required", body: "proxy authentication required",
        extraHeaders: ["Proxy-Authenticate: Basic realm=\"montana\""])

    public static func badRequest(_ message: String) -> [UInt8] {
        plainText(status: 400, reason: "Bad Request", body: message)
    }

    public static func badGateway(_ message: String) -> [UInt8] {
        plainText(status: 502, reason: "Bad Gateway", body: message)
    }

    public static func gatewayTimeout(_ message: String) -> [UInt8] {
        plainText(status: 504, reason: "Gateway Timeout", body: message)
    }

    static func plainText(status: Int, reason: String, body: String, extraHeaders: [String] = []) -> [UInt8] {
        let content = Array((body + "\n").utf8)
        var head = "HTTP/1.1 \(status) \(reason)\r\n"
        for header in extraHeaders { head += header + "\r\n" }
        head += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(content.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + content
    }
}
