import Foundation
import MontanaWire

/// Reads one HTTP/1.x proxy request head (RFC 9112) from bytes arriving in any fragments:
/// `CONNECT host:port` or an absolute `http://` URI, which it rewrites to origin form for the
/// target. Sans-I/O: `receive` bytes, call `next()`; the body and anything after it is leftover.
public struct HTTPProxyRequestParser: Sendable {
    /// The whole head (request line, headers, blank line): 16 KiB holds any real client's
    /// proxy request (curl sends about 100 bytes, browsers under 2 KiB) and bounds what an app
    /// can make the proxy buffer before it answers 431.
    public static let maxHeadLength = 16 * 1024
    /// The request line without its CRLF: RFC 9112 section 3 asks for at least 8000 octets;
    /// 8 KiB is what common servers allow. Longer gets 400 as soon as it is seen.
    public static let maxRequestLineLength = 8 * 1024
    /// Header fields per head: Apache's default LimitRequestFields; over it gets 431.
    public static let maxHeaderCount = 100
    /// A target host name: EgressOpen carries it with a one-byte length (PROTOCOL.md 7.2).
    public static let maxHostLength = EgressOpen.maxHostNameLength
    /// A bracketed IPv6 literal: the longest text form, with an embedded IPv4 address
    /// ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"), is 45 characters (INET6_ADDRSTRLEN - 1).
    public static let maxIPv6LiteralLength = 45

    public enum Step: Equatable, Sendable {
        case needMoreBytes
        case request(HTTPProxyRequest, leftover: [UInt8])
    }

    private var buffer: [UInt8] = []
    /// Where the search for CRLFCRLF resumes, so byte-at-a-time input stays linear.
    private var scanned = 0
    /// Where the search for the request line's CRLF resumes; nil once it was found.
    private var requestLineScanned: Int? = 0

    public init() {}

    /// Bytes held and not yet parsed. Bounded by `maxHeadLength` plus one `receive` when the
    /// caller calls `next()` after each `receive`, as the proxy does.
    public var bufferedByteCount: Int { buffer.count }

    public mutating func receive<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() throws(HTTPProxyError) -> Step {
        try checkRequestLineLength()
        guard let headEnd = findHeadEnd() else {
            if buffer.count >= Self.maxHeadLength { throw .headTooLarge }
            return .needMoreBytes
        }
        guard headEnd + 4 <= Self.maxHeadLength else { throw .headTooLarge }
        let head = Array(buffer[..<headEnd])
        let leftover = Array(buffer[(headEnd + 4)...])
        buffer = []
        scanned = 0
        requestLineScanned = 0
        return .request(try Self.parse(head: head), leftover: leftover)
    }

    /// Refuses a request line longer than `maxRequestLineLength` as soon as that many bytes
    /// arrived without its CRLF, without waiting for the whole head.
    private mutating func checkRequestLineLength() throws(HTTPProxyError) {
        guard var i = requestLineScanned else { return }
        let limit = min(buffer.count, Self.maxRequestLineLength + 2)
        i = max(i - 1, 0)
        while i + 1 < limit {
            if buffer[i] == 0x0d, buffer[i + 1] == 0x0a {
                requestLineScanned = nil
                return
            }
            i += 1
        }
        if buffer.count >= Self.maxRequestLineLength + 2 { throw .requestLineTooLong }
        requestLineScanned = i
    }

    private mutating func findHeadEnd() -> Int? {
        var i = max(scanned - 3, 0)
        while i + 4 <= buffer.count {
            if buffer[i] == 0x0d, buffer[i + 1] == 0x0a, buffer[i + 2] == 0x0d, buffer[i + 3] == 0x0a { return i }
            i += 1
        }
        scanned = buffer.count
        return nil
    }

    // MARK: - Head

    private struct Header {
        var lowercasedName: String
        var value: String
        var line: ArraySlice<UInt8>
    }

    private static func parse(head: [UInt8]) throws(HTTPProxyError) -> HTTPProxyRequest {
        let lines = try splitLines(head)
        guard lines[0].count <= maxRequestLineLength else { throw .requestLineTooLong }
        guard lines.count - 1 <= maxHeaderCount else { throw .tooManyHeaders }
        let requestLine = lines[0].split(separator: 0x20, omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty, requestLine[0].allSatisfy(isTokenByte),
              !requestLine[1].isEmpty, requestLine[1].allSatisfy({ $0 > 0x20 && $0 != 0x7f }) else {
            throw .malformedRequestLine
        }
        let method = String(decoding: requestLine[0], as: UTF8.self)
        let target = String(decoding: requestLine[1], as: UTF8.self)
        let version = String(decoding: requestLine[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw version.hasPrefix("HTTP/") ? .unsupportedVersion : .malformedRequestLine
        }
        var headers: [Header] = []
        for line in lines.dropFirst() { headers.append(try parseHeader(line)) }
        let credentials = try proxyCredentials(headers)

        if method == "CONNECT" {
            let authority = try parseAuthority(target, requirePort: true)
            return HTTPProxyRequest(kind: .connect, method: method, host: authority.host, port: authority.port,
                                    credentials: credentials)
        }
        let lowerTarget = target.lowercased()
        if lowerTarget.hasPrefix("https://") { throw .httpsWithoutConnect }
        if target.hasPrefix("/") || target == "*" { throw .notAProxyRequest }
        guard lowerTarget.hasPrefix("http://") else { throw .invalidTarget }
        let rest = target.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = try parseAuthority(String(rest[..<authorityEnd]), requirePort: false)
        var path = String(rest[authorityEnd...].prefix { $0 != "#" })
        if !path.hasPrefix("/") { path = "/" + path }

        let head = forwardHead(requestLine: "\(method) \(path) \(version)", hostHeader: authority.hostHeader, headers: headers)
        return HTTPProxyRequest(kind: .forward(originFormHead: head), method: method, host: authority.host,
                                port: authority.port, credentials: credentials)
    }

    /// Splits on CRLF; a lone CR or LF is refused, since peers disagree on it (request smuggling).
    private static func splitLines(_ head: [UInt8]) throws(HTTPProxyError) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0, i = 0
        while i < head.count {
            if head[i] == 0x0d, i + 1 < head.count, head[i + 1] == 0x0a {
                lines.append(head[start..<i])
                i += 2
                start = i
            } else if head[i] == 0x0d || head[i] == 0x0a {
                throw lines.isEmpty ? .malformedRequestLine : .malformedHeader
            } else {
                i += 1
            }
        }
        lines.append(head[start...])
        return lines
    }

    private static func parseHeader(_ line: ArraySlice<UInt8>) throws(HTTPProxyError) -> Header {
        // Also refuses obsolete line folding (a line starting with whitespace): no name before the colon.
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
              line[..<colon].allSatisfy(isTokenByte) else { throw .malformedHeader }
        let rawValue = line[(colon + 1)...]
        guard rawValue.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7f) }) else { throw .malformedHeader }
        let isWhitespace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let trimmed = rawValue.drop(while: isWhitespace).reversed().drop(while: isWhitespace).reversed()
        return Header(lowercasedName: String(decoding: line[..<colon], as: UTF8.self).lowercased(),
                      value: String(decoding: trimmed, as: UTF8.self), line: line)
    }

    /// `Proxy-Authorization: Basic base64(user:pass)`. Other schemes yield nil, so the proxy
    /// answers 407 with its Basic challenge.
    private static func proxyCredentials(_ headers: [Header]) throws(HTTPProxyError) -> ProxyCredentials? {
        guard let header = headers.first(where: { $0.lowercasedName == "proxy-authorization" }) else { return nil }
        let parts = header.value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return nil }
        guard let decoded = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { throw .invalidProxyAuthorization }
        return ProxyCredentials(username: String(decoding: decoded[..<colon], as: UTF8.self),
                                password: String(decoding: decoded[(colon + 1)...], as: UTF8.self))
    }

    /// Host first (RFC 9112 3.2.2: a proxy replaces it with the URI's authority), proxy-only
    /// headers dropped, and `Connection: close` unless the client is upgrading (WebSocket).
    private static func forwardHead(requestLine: String, hostHeader: String, headers: [Header]) -> [UInt8] {
        let upgrading = headers.contains { header in
            header.lowercasedName == "connection"
                && header.value.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "upgrade" }
        }
        let dropped: Set<String> = upgrading
            ? ["host", "proxy-authorization", "proxy-connection", "keep-alive"]
            : ["host", "proxy-authorization", "proxy-connection", "keep-alive", "connection"]
        var out = Array("\(requestLine)\r\nHost: \(hostHeader)\r\n".utf8)
        for header in headers where !dropped.contains(header.lowercasedName) {
            out += header.line
            out += [0x0d, 0x0a]
        }
        if !upgrading { out += Array("Connection: close\r\n".utf8) }
        out += [0x0d, 0x0a]
        return out
    }

    // MARK: - Authority

    private struct Authority {
        var host: String
        var port: UInt16
        var hostHeader: String
    }

    /// `host[:port]` or `[v6][:port]`; userinfo is refused.
    private static func parseAuthority(_ text: String, requirePort: Bool) throws(HTTPProxyError) -> Authority {
        let bytes = Array(text.utf8)
        let host: String, hostText: String
        var portText: ArraySlice<UInt8>? = nil
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { throw .invalidTarget }
            let literal = bytes[1..<close]
            guard literal.count <= maxIPv6LiteralLength else { throw .hostTooLong }
            guard literal.contains(UInt8(ascii: ":")), literal.allSatisfy(isIPv6LiteralByte) else { throw .invalidTarget }
            host = String(decoding: literal, as: UTF8.self)
            hostText = "[\(host)]"
            let after = bytes[(close + 1)...]
            if let first = after.first {
                guard first == UInt8(ascii: ":") else { throw .invalidTarget }
                portText = after.dropFirst()
            }
        } else {
            let colon = bytes.firstIndex(of: UInt8(ascii: ":"))
            let name = bytes[..<(colon ?? bytes.count)]
            guard name.count <= maxHostLength else { throw .hostTooLong }
            guard !name.isEmpty, name.allSatisfy(isHostNameByte) else { throw .invalidTarget }
            host = String(decoding: name, as: UTF8.self)
            hostText = host
            if let colon { portText = bytes[(colon + 1)...] }
        }
        guard let portText, !portText.isEmpty else {
            if requirePort { throw .invalidTarget }
            return Authority(host: host, port: 80, hostHeader: hostText)
        }
        guard portText.count <= 5, portText.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let port = UInt16(String(decoding: portText, as: UTF8.self)), port != 0 else { throw .invalidTarget }
        return Authority(host: host, port: port, hostHeader: "\(hostText):\(port)")
    }

    /// RFC 9110 tchar.
    private static func isTokenByte(_ c: UInt8) -> Bool {
        isAlphanumeric(c) || "!#$%&'*+-.^_`|~".utf8.contains(c)
    }

    /// Letters, digits, `-`, `.`, `_`, `~`: DNS names and IPv4 literals, nothing that could
    /// smuggle a path, userinfo (`@`) or a second port.
    private static func isHostNameByte(_ c: UInt8) -> Bool {
        isAlphanumeric(c) || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "~")
    }

    private static func isIPv6LiteralByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
            || c == UInt8(ascii: ":") || c == UInt8(ascii: ".")
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
    }
}
