/// One line a managed pluggable transport writes on its stdout (Tor PT spec 1.0, section 3.3).
/// Parsing never trusts the program: lines are bounded (`PTLineReader`), addresses must be
/// `host:port` with a port 1-65535, and `ARGS` hold at most `maxArgs` pairs.
public enum PTMessage: Equatable, Sendable {
    case version(String)
    case versionError(String)
    case envError(String)
    case cmethod(transport: String, proxy: String, host: String, port: Int)
    case cmethodError(transport: String, message: String)
    case cmethodsDone
    case smethod(transport: String, host: String, port: Int, args: [String: String])
    case smethodError(transport: String, message: String)
    case smethodsDone
    /// `LOG`, `STATUS`, `PROXY …` and lines this parser does not know (the spec says ignore).
    case other(String)

    public static let maxArgs = 32

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self { case .malformed(let why): return why }
        }
    }

    /// Parses one line (without its newline).
    public static func parse(_ line: String) throws(ParseError) -> PTMessage {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let keyword = words.first else { return .other(line) }
        func rest(from index: Int) -> String { words.dropFirst(index).joined(separator: " ") }
        switch keyword {
        case "VERSION":
            guard words.count == 2 else { throw .malformed("VERSION needs exactly one version") }
            return .version(words[1])
        case "VERSION-ERROR": return .versionError(rest(from: 1))
        case "ENV-ERROR": return .envError(rest(from: 1))
        case "CMETHOD":
            guard words.count >= 4 else { throw .malformed("CMETHOD needs a transport, a proxy type and an address") }
            let (host, port) = try address(words[3])
            return .cmethod(transport: words[1], proxy: words[2], host: host, port: port)
        case "CMETHOD-ERROR":
            guard words.count >= 2 else { throw .malformed("CMETHOD-ERROR needs a transport") }
            return .cmethodError(transport: words[1], message: rest(from: 2))
        case "CMETHODS":
            guard words.count == 2, words[1] == "DONE" else { throw .malformed("CMETHODS must be followed by DONE") }
            return .cmethodsDone
        case "SMETHOD":
            guard words.count >= 3 else { throw .malformed("SMETHOD needs a transport and an address") }
            let (host, port) = try address(words[2])
            var args: [String: String] = [:]
            for option in words.dropFirst(3) where option.hasPrefix("ARGS:") {
                args = try parseArgs(String(option.dropFirst(5)))
            }
            return .smethod(transport: words[1], host: host, port: port, args: args)
        case "SMETHOD-ERROR":
            guard words.count >= 2 else { throw .malformed("SMETHOD-ERROR needs a transport") }
            return .smethodError(transport: words[1], message: rest(from: 2))
        case "SMETHODS":
            guard words.count == 2, words[1] == "DONE" else { throw .malformed("SMETHODS must be followed by DONE") }
            return .smethodsDone
        default:
            return .other(line)
        }
    }

    /// `1.2.3.4:5`, `[::1]:5`.
    static func address(_ text: String) throws(ParseError) -> (String, Int) {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .malformed("address \"\(text.prefix(64))\" is not [v6]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .malformed("address \"\(text.prefix(64))\" has no port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else {
            throw .malformed("address \"\(text.prefix(64))\" is not host:port with a port 1-65535")
        }
        return (String(host), port)
    }

    /// `k=v,k=v` with `\` escaping `,`, `=` and `\` (PT spec 1.0, 3.3.3).
    static func parseArgs(_ text: String) throws(ParseError) -> [String: String] {
        var out: [String: String] = [:]
        var key = "", value = "", inValue = false, escaped = false
        func flush() throws(ParseError) {
            guard !key.isEmpty else { throw .malformed("ARGS has an empty key") }
            guard inValue else { throw .malformed("ARGS key \"\(key.prefix(32))\" has no value") }
            guard out.count < maxArgs else { throw .malformed("ARGS has more than \(maxArgs) pairs") }
            out[key] = value
            key = ""; value = ""; inValue = false
        }
        for c in text {
            if escaped {
                if inValue { value.append(c) } else { key.append(c) }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "," {
                try flush()
            } else if c == "=" && !inValue {
                inValue = true
            } else if inValue {
                value.append(c)
            } else {
                key.append(c)
            }
        }
        guard !escaped else { throw .malformed("ARGS ends in a lone backslash") }
        if !key.isEmpty || inValue { try flush() }
        return out
    }
}

/// Splits a program's output into lines, each at most `maxLine` bytes. A longer line is cut:
/// its first `maxLine` bytes come out as `.tooLong` and the rest until the newline is dropped,
/// so a misbehaving program cannot grow the buffer.
public struct PTLineReader: Sendable {
    public static let maxLine = 4096
    public enum Line: Equatable, Sendable {
        case line(String)
        case tooLong(String)
    }

    private var buffer: [UInt8] = []
    private var skipping = false
    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Line] {
        var out: [Line] = []
        for b in bytes {
            if b == 0x0a {
                if skipping {
                    skipping = false
                } else {
                    if buffer.last == 0x0d { buffer.removeLast() }
                    out.append(.line(String(decoding: buffer, as: UTF8.self)))
                }
                buffer.removeAll(keepingCapacity: true)
            } else if !skipping {
                buffer.append(b)
                if buffer.count >= Self.maxLine {
                    out.append(.tooLong(String(decoding: buffer, as: UTF8.self)))
                    buffer.removeAll(keepingCapacity: true)
                    skipping = true
                }
            }
        }
        return out
    }
}
