/// The messages on a `/montana/egress/1.0.0` stream (PROTOCOL.md section 7.2). Each travels as
/// `uvarint len ‖ message` on the stream. Anything that fails to decode resets the stream.
public enum EgressMessage: Equatable, Sendable {
    case open(EgressOpen)
    case openAck(streamID: UInt32, status: EgressOpenStatus)
    case data(streamID: UInt32, payload: [UInt8])
    case close(streamID: UInt32, reason: EgressCloseReason)
    case keepalive

    public static let maxPayload = 65519
    /// The stream protocol these messages travel on.
    public static let protocolID = "/montana/egress/1.0.0"

    public enum TypeByte {
        public static let open: UInt8 = 0x02
        public static let openAck: UInt8 = 0x03
        public static let data: UInt8 = 0x04
        public static let close: UInt8 = 0x05
        public static let keepalive: UInt8 = 0x06
    }

    public var streamID: UInt32? {
        switch self {
        case .open(let o): return o.streamID
        case .openAck(let id, _), .data(let id, _), .close(let id, _): return id
        case .keepalive: return nil
        }
    }

    /// The bytes of this message. Never traps: a value the wire cannot carry (a host name of
    /// 0 or over `EgressOpen.maxHostNameLength` bytes, an IP address of the wrong length, an
    /// EgressData payload over `maxPayload`) is a thrown error, for the caller to turn into a
    /// proxy error reply.
    public func encode() throws(WireError) -> [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .open(let o):
            out.append(TypeByte.open)
            out.appendLE(o.streamID)
            out.append(o.transport.rawValue)
            try o.address.append(to: &out)
            out.appendBE(o.port)
        case .openAck(let id, let status):
            out.append(TypeByte.openAck)
            out.appendLE(id)
            out.append(status.rawValue)
        case .data(let id, let payload):
            guard payload.count <= Self.maxPayload else {
                throw .tooLong(field: "EgressData payload", length: payload.count, limit: Self.maxPayload)
            }
            out.append(TypeByte.data)
            out.appendLE(id)
            out += payload
        case .close(let id, let reason):
            out.append(TypeByte.close)
            out.appendLE(id)
            out.append(reason.rawValue)
        case .keepalive:
            out.append(TypeByte.keepalive)
        }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> EgressMessage {
        var r = ByteReader(bytes)
        let type = try r.readU8()
        let message: EgressMessage
        switch type {
        case TypeByte.open:
            let id = try r.readLE(UInt32.self)
            let rawTransport = try r.readU8()
            guard let transport = EgressTransport(rawValue: rawTransport) else {
                throw .invalidValue(field: "EgressOpen.protocol", value: UInt64(rawTransport))
            }
            let addrType = try r.readU8()
            let address: EgressAddress
            switch addrType {
            case 0: address = .ipv4(try r.readBytes(4))
            case 1: address = .ipv6(try r.readBytes(16))
            case 2:
                let length = Int(try r.readU8())
                guard length >= 1 else { throw .invalidField("EgressOpen host name is empty") }
                let name = try r.readBytes(length)
                guard EgressAddress.isValidHostName(name), let s = String(validating: name, as: UTF8.self) else {
                    throw .invalidField("EgressOpen host name has control or space bytes, or is not UTF-8")
                }
                address = .host(s)
            default: throw .invalidValue(field: "EgressOpen.addr_type", value: UInt64(addrType))
            }
            let port = try r.readBE(UInt16.self)
            message = .open(EgressOpen(streamID: id, transport: transport, address: address, port: port))
        case TypeByte.openAck:
            let id = try r.readLE(UInt32.self)
            let raw = try r.readU8()
            guard let status = EgressOpenStatus(rawValue: raw) else { throw .invalidValue(field: "EgressOpenAck.status", value: UInt64(raw)) }
            message = .openAck(streamID: id, status: status)
        case TypeByte.data:
            let id = try r.readLE(UInt32.self)
            guard r.remaining <= maxPayload else { throw .tooLong(field: "EgressData payload", length: r.remaining, limit: maxPayload) }
            message = .data(streamID: id, payload: r.readRest())
        case TypeByte.close:
            let id = try r.readLE(UInt32.self)
            let raw = try r.readU8()
            guard let reason = EgressCloseReason(rawValue: raw) else { throw .invalidValue(field: "EgressClose.reason", value: UInt64(raw)) }
            message = .close(streamID: id, reason: reason)
        case TypeByte.keepalive:
            message = .keepalive
        default:
            throw .unknownType(type)
        }
        try r.expectEnd()
        return message
    }
}

public struct EgressOpen: Equatable, Sendable {
    /// `host_len` is one byte on the wire (PROTOCOL.md 7.2), and 0 is refused: 1...255 bytes.
    public static let maxHostNameLength = Int(UInt8.max)

    public var streamID: UInt32
    public var transport: EgressTransport
    public var address: EgressAddress
    public var port: UInt16

    public init(streamID: UInt32, transport: EgressTransport, address: EgressAddress, port: UInt16) {
        self.streamID = streamID
        self.transport = transport
        self.address = address
        self.port = port
    }
}

public enum EgressTransport: UInt8, Sendable { case tcp = 0, udp = 1 }

public enum EgressAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4([UInt8])
    case ipv6([UInt8])
    case host(String)

    /// Whether the wire can carry this address as `addr_type ‖ addr` (exact IP lengths, a host
    /// name of 1...255 bytes without control or space bytes). Cheap; call it before opening a
    /// stream so a bad destination becomes a proxy error reply, not a reset.
    public func validate() throws(WireError) {
        switch self {
        case .ipv4(let a):
            guard a.count == 4 else { throw .invalidField("EgressOpen IPv4 address is \(a.count) bytes, expected 4") }
        case .ipv6(let a):
            guard a.count == 16 else { throw .invalidField("EgressOpen IPv6 address is \(a.count) bytes, expected 16") }
        case .host(let name):
            let bytes = Array(name.utf8)
            guard !bytes.isEmpty else { throw .invalidField("EgressOpen host name is empty") }
            guard bytes.count <= EgressOpen.maxHostNameLength else {
                throw .tooLong(field: "EgressOpen host name", length: bytes.count, limit: EgressOpen.maxHostNameLength)
            }
            guard Self.isValidHostName(bytes) else { throw .invalidField("EgressOpen host name has control or space bytes") }
        }
    }

    /// `addr_type ‖ addr` as EgressOpen carries it.
    func append(to out: inout [UInt8]) throws(WireError) {
        try validate()
        switch self {
        case .ipv4(let a):
            out.append(0)
            out += a
        case .ipv6(let a):
            out.append(1)
            out += a
        case .host(let name):
            let bytes = Array(name.utf8)
            guard let length = UInt8(exactly: bytes.count) else {
                throw .tooLong(field: "EgressOpen host name", length: bytes.count, limit: EgressOpen.maxHostNameLength)
            }
            out.append(2)
            out.append(length)
            out += bytes
        }
    }

    /// The byte rule for host names, shared by the decoder and `validate()`.
    static func isValidHostName<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.allSatisfy { $0 > 0x20 && $0 != 0x7f }
    }

    public var description: String {
        switch self {
        case .ipv4(let a): return a.map(String.init).joined(separator: ".")
        case .ipv6(let a) where a.count != 16: return "invalid IPv6 address (\(a.count) bytes)"
        case .ipv6(let a):
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(a[i]) << 8 | UInt16(a[i + 1]), radix: 16)) }
            return groups.joined(separator: ":")
        case .host(let h): return h
        }
    }
}

public enum EgressOpenStatus: UInt8, Sendable {
    case open = 0
    case refusedByPolicy = 1
    case unreachable = 2
    case rateLimited = 3
}

public enum EgressCloseReason: UInt8, Sendable {
    case normal = 0
    case error = 1
    case policy = 2
}
