/// libp2p Circuit Relay v2 messages with the Montana extension fields (PROTOCOL.md section 3).
/// Proto2: `type` is always emitted, optional fields only when set, fields in number order.

public enum RelayStatus: UInt32, Sendable, Equatable, CaseIterable {
    case ok = 100
    case reservationRefused = 200
    case resourceLimitExceeded = 201
    case permissionDenied = 202
    case connectionFailed = 203
    case noReservation = 204
    case malformedMessage = 400
    case unexpectedMessage = 401
}

/// What the bytes after a preface are for.
public enum CircuitPurpose: UInt64, Sendable, Equatable {
    case session = 0
    case attach = 1
    case resume = 2
    case onward = 3
    /// Addressed to the hop itself: it answers STATUS OK carrying the address it sees the
    /// connection come from (`peer.addrs[0]`, 16-byte IPv6 or v4-mapped ‖ u16 LE port) and closes.
    /// Members send it to themselves through another member's egress to learn that exit's
    /// egress address (attestation, docs/PROTOCOL.md 8.4).
    case echo = 4
}

public struct RelayPeer: Equatable, Sendable {
    public var id: [UInt8]
    public var addrs: [[UInt8]]

    public init(id: [UInt8], addrs: [[UInt8]] = []) {
        self.id = id
        self.addrs = addrs
    }

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, id)
        for a in addrs { w.lengthDelimited(2, a) }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> RelayPeer {
        var id: [UInt8]?
        var addrs: [[UInt8]] = []
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: id = try value.asBytes("peer.id")
            case 2: addrs.append(try value.asBytes("peer.addrs"))
            default: break
            }
        }
        guard let id else { throw .missingField("peer.id") }
        return RelayPeer(id: id, addrs: addrs)
    }
}

public struct RelayLimit: Equatable, Sendable {
    public var duration: UInt32?
    public var data: UInt64?

    public init(duration: UInt32? = nil, data: UInt64? = nil) {
        self.duration = duration
        self.data = data
    }

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1, ifSet: duration.map(UInt64.init))
        w.varint(2, ifSet: data)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> RelayLimit {
        var limit = RelayLimit()
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: limit.duration = try value.asUInt32("limit.duration")
            case 2: limit.data = try value.asVarint("limit.data")
            default: break
            }
        }
        return limit
    }
}

public struct RelayReservation: Equatable, Sendable {
    public var expire: UInt64
    public var addrs: [[UInt8]]
    public var voucher: [UInt8]?

    public init(expire: UInt64, addrs: [[UInt8]] = [], voucher: [UInt8]? = nil) {
        self.expire = expire
        self.addrs = addrs
        self.voucher = voucher
    }

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1, expire)
        for a in addrs { w.lengthDelimited(2, a) }
        w.lengthDelimited(3, ifSet: voucher)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> RelayReservation {
        var r = RelayReservation(expire: 0)
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: r.expire = try value.asVarint("reservation.expire")
            case 2: r.addrs.append(try value.asBytes("reservation.addrs"))
            case 3: r.voucher = try value.asBytes("reservation.voucher")
            default: break
            }
        }
        return r
    }
}

/// The Montana extension fields shared by both relay messages (numbers 100-103).
public struct RelayExtension: Equatable, Sendable {
    public var ts: UInt64?
    public var alliance: [UInt8]?
    public var purpose: CircuitPurpose?
    public var attachToken: [UInt8]?

    public init(ts: UInt64? = nil, alliance: [UInt8]? = nil, purpose: CircuitPurpose? = nil, attachToken: [UInt8]? = nil) {
        self.ts = ts
        self.alliance = alliance
        self.purpose = purpose
        self.attachToken = attachToken
    }

    func encode(into w: inout ProtoWriter) {
        w.fixed64(100, ifSet: ts)
        w.lengthDelimited(101, ifSet: alliance)
        w.varint(102, ifSet: purpose?.rawValue)
        w.lengthDelimited(103, ifSet: attachToken)
    }

    /// Returns true when the field belonged to the extension.
    mutating func decode(field: UInt32, value: ProtoValue) throws(WireError) -> Bool {
        switch field {
        case 100: ts = try value.asFixed64("ts")
        case 101:
            let v = try value.asBytes("alliance")
            guard v.count == 16 else { throw .invalidField("alliance: must be 16 bytes") }
            alliance = v
        case 102:
            let raw = try value.asVarint("purpose")
            guard let p = CircuitPurpose(rawValue: raw) else { throw .invalidValue(field: "purpose", value: raw) }
            purpose = p
        case 103:
            let v = try value.asBytes("attach_token")
            guard v.count == 32 else { throw .invalidField("attach_token: must be 32 bytes") }
            attachToken = v
        default: return false
        }
        return true
    }
}

public struct HopMessage: Equatable, Sendable {
    public enum Kind: UInt64, Sendable { case reserve = 0, connect = 1, status = 2 }

    public var type: Kind
    public var peer: RelayPeer?
    public var reservation: RelayReservation?
    public var limit: RelayLimit?
    public var status: RelayStatus?
    public var ext: RelayExtension

    public init(type: Kind, peer: RelayPeer? = nil, reservation: RelayReservation? = nil, limit: RelayLimit? = nil,
                status: RelayStatus? = nil, ext: RelayExtension = RelayExtension()) {
        self.type = type
        self.peer = peer
        self.reservation = reservation
        self.limit = limit
        self.status = status
        self.ext = ext
    }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1, type.rawValue)
        w.lengthDelimited(2, ifSet: peer?.encode())
        w.lengthDelimited(3, ifSet: reservation?.encode())
        w.lengthDelimited(4, ifSet: limit?.encode())
        w.varint(5, ifSet: status.map { UInt64($0.rawValue) })
        ext.encode(into: &w)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> HopMessage {
        var type: Kind?
        var m = HopMessage(type: .status)
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1:
                let raw = try value.asVarint("type")
                guard let k = Kind(rawValue: raw) else { throw .invalidValue(field: "HopMessage.type", value: raw) }
                type = k
            case 2: m.peer = try RelayPeer.decode(value.asBytes("peer"))
            case 3: m.reservation = try RelayReservation.decode(value.asBytes("reservation"))
            case 4: m.limit = try RelayLimit.decode(value.asBytes("limit"))
            case 5: m.status = try decodeStatus(value)
            default: _ = try m.ext.decode(field: field, value: value)
            }
        }
        guard let type else { throw .missingField("HopMessage.type") }
        m.type = type
        return m
    }
}

public struct StopMessage: Equatable, Sendable {
    public enum Kind: UInt64, Sendable { case connect = 0, status = 1 }

    public var type: Kind
    public var peer: RelayPeer?
    public var limit: RelayLimit?
    public var status: RelayStatus?
    public var ext: RelayExtension

    public init(type: Kind, peer: RelayPeer? = nil, limit: RelayLimit? = nil, status: RelayStatus? = nil,
                ext: RelayExtension = RelayExtension()) {
        self.type = type
        self.peer = peer
        self.limit = limit
        self.status = status
        self.ext = ext
    }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1, type.rawValue)
        w.lengthDelimited(2, ifSet: peer?.encode())
        w.lengthDelimited(3, ifSet: limit?.encode())
        w.varint(4, ifSet: status.map { UInt64($0.rawValue) })
        ext.encode(into: &w)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> StopMessage {
        var type: Kind?
        var m = StopMessage(type: .status)
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1:
                let raw = try value.asVarint("type")
                guard let k = Kind(rawValue: raw) else { throw .invalidValue(field: "StopMessage.type", value: raw) }
                type = k
            case 2: m.peer = try RelayPeer.decode(value.asBytes("peer"))
            case 3: m.limit = try RelayLimit.decode(value.asBytes("limit"))
            case 4: m.status = try decodeStatus(value)
            default: _ = try m.ext.decode(field: field, value: value)
            }
        }
        guard let type else { throw .missingField("StopMessage.type") }
        m.type = type
        return m
    }
}

private func decodeStatus(_ value: ProtoValue) throws(WireError) -> RelayStatus {
    let raw = try value.asVarint("status")
    guard raw <= UInt64(UInt32.max), let s = RelayStatus(rawValue: UInt32(raw)) else {
        throw .invalidValue(field: "status", value: raw)
    }
    return s
}
