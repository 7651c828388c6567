/// Why a proxy request head was refused; `response` is what to send before closing.
public enum HTTPProxyError: Error, Equatable, Sendable, CustomStringConvertible {
    case headTooLarge
    case requestLineTooLong
    case tooManyHeaders
    /// A host name over 255 bytes or an IPv6 literal over 45 characters: EgressOpen cannot carry it.
    case hostTooLong
    case malformedRequestLine
    case unsupportedVersion
    case malformedHeader
    case invalidTarget
    /// `GET https://...` without CONNECT: the proxy would have to originate TLS itself.
    case httpsWithoutConnect
    /// An origin-form (`GET /path`) or `*` request: this port is a proxy, not a web server.
    case notAProxyRequest
    case invalidProxyAuthorization

    public var description: String {
        switch self {
        case .headTooLarge: return "request head exceeds \(HTTPProxyRequestParser.maxHeadLength) bytes"
        case .requestLineTooLong: return "request line exceeds \(HTTPProxyRequestParser.maxRequestLineLength) bytes"
        case .tooManyHeaders: return "more than \(HTTPProxyRequestParser.maxHeaderCount) header fields"
        case .hostTooLong:
            return "target host exceeds \(HTTPProxyRequestParser.maxHostLength) bytes "
                + "(or \(HTTPProxyRequestParser.maxIPv6LiteralLength) for a bracketed IPv6 literal)"
        case .malformedRequestLine: return "malformed request line"
        case .unsupportedVersion: return "HTTP version other than 1.0 or 1.1"
        case .malformedHeader: return "malformed header line"
        case .invalidTarget: return "invalid request target (host or port)"
        case .httpsWithoutConnect: return "https:// URLs must use CONNECT"
        case .notAProxyRequest: return "request target is not an absolute http:// URL or CONNECT authority"
        case .invalidProxyAuthorization: return "malformed Proxy-Authorization Basic credentials"
        }
    }

    public var response: [UInt8] {
        switch self {
        case .headTooLarge, .tooManyHeaders:
            return HTTPProxyResponse.plainText(status: 431, reason: "Request Header Fields Too Large", body: description)
        default:
            return HTTPProxyResponse.badRequest(description)
        }
    }
}
