import MontanaWire

/// Messages of `/montana/reachability/1.0.0` (PROTOCOL.md section 9), one request and one answer
/// per stream, each behind the usual u32 length of `/montana/*` messages:
///
/// - submit: `01 ‖ n u8 (1-64) ‖ n × ReachabilityAdvert (47)` → `01 ‖ taken u8`
/// - fetch:  `02 ‖ country (2) ‖ asn u32 LE` → `02 ‖ n u16 LE (≤ 256) ‖ n × (target (32) ‖ profile u8 ‖
///   sources u8 ‖ reachable_sources u8 ‖ state u8: 0 unknown, 1 reachable, 2 unreachable)`
/// - sync (members only): `03 ‖ n u16 LE (≤ 1024) ‖ n × (source_group u64 LE ‖ advert (47))` → `03 ‖ taken u16 LE`
public enum ReachabilityMessage: Equatable, Sendable {
    case submit([ReachabilityAdvert])
    case submitted(Int)
    case fetch(Vantage)
    case map([ReachabilityMap.Entry])
    case sync([ReachabilityMap.SourcedAdvert])
    case synced(Int)

    public static let protocolID = "/montana/reachability/1.0.0"
    public static let maxSubmit = 64
    public static let maxEntries = 256
    public static let maxSync = 1024
    static let entrySize = 32 + 4
    static let syncItemSize = 8 + ReachabilityAdvert.size

    /// Requests and answers share the type byte; `answer` says which side is reading.
    public static func decode(_ bytes: [UInt8], answer: Bool) throws(WireError) -> ReachabilityMessage {
        var r = ByteReader(bytes)
        let type = try r.readU8()
        switch (type, answer) {
        case (1, false):
            let n = Int(try r.readU8())
            guard (1...maxSubmit).contains(n) else { throw .invalidValue(field: "submit count", value: UInt64(n)) }
            var adverts: [ReachabilityAdvert] = []
            for _ in 0..<n { adverts.append(try ReachabilityAdvert.decode(try r.readBytes(ReachabilityAdvert.size))) }
            try r.expectEnd()
            return .submit(adverts)
        case (1, true):
            let n = Int(try r.readU8())
            try r.expectEnd()
            return .submitted(n)
        case (2, false):
            let cc = try r.readBytes(2)
            _ = try CountryCode.decode(cc, allowUnknownVantage: true, field: "country")
            let asn = try r.readLE(UInt32.self)
            try r.expectEnd()
            return .fetch(Vantage(country: String(decoding: cc, as: UTF8.self), asn: asn))
        case (2, true):
            let n = Int(try r.readLE(UInt16.self))
            guard n <= maxEntries else { throw .invalidValue(field: "map count", value: UInt64(n)) }
            var entries: [ReachabilityMap.Entry] = []
            for _ in 0..<n {
                let target = try r.readBytes(32), profile = try r.readU8(), sources = Int(try r.readU8()), yes = Int(try r.readU8())
                let state: ReachabilityMap.State
                switch try r.readU8() {
                case 0: state = .unknown
                case 1: state = .reachable
                case 2: state = .unreachable
                case let v: throw .invalidValue(field: "state", value: UInt64(v))
                }
                guard yes <= sources else { throw .invalidValue(field: "reachable_sources", value: UInt64(yes)) }
                entries.append(ReachabilityMap.Entry(target: target, profile: profile, sources: sources, reachableSources: yes, state: state))
            }
            try r.expectEnd()
            return .map(entries)
        case (3, false):
            let n = Int(try r.readLE(UInt16.self))
            guard n <= maxSync else { throw .invalidValue(field: "sync count", value: UInt64(n)) }
            var items: [ReachabilityMap.SourcedAdvert] = []
            for _ in 0..<n {
                let group = SourceGroup(raw: try r.readLE(UInt64.self))
                items.append(ReachabilityMap.SourcedAdvert(source: group, advert: try ReachabilityAdvert.decode(try r.readBytes(ReachabilityAdvert.size))))
            }
            try r.expectEnd()
            return .sync(items)
        case (3, true):
            let n = Int(try r.readLE(UInt16.self))
            try r.expectEnd()
            return .synced(n)
        default:
            throw .invalidValue(field: "reachability message type", value: UInt64(type))
        }
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .submit(let adverts):
            out = [1, UInt8(clamping: min(adverts.count, Self.maxSubmit))]
            for a in adverts.prefix(Self.maxSubmit) { out += a.encode() }
        case .submitted(let n):
            out = [1, UInt8(clamping: n)]
        case .fetch(let v):
            out = [2] + Array(v.country.utf8.prefix(2))
            out.appendLE(v.asn)
        case .map(let entries):
            out = [2]
            let shown = entries.prefix(Self.maxEntries)
            out.appendLE(UInt16(shown.count))
            for e in shown {
                let state: UInt8 = e.state == .reachable ? 1 : e.state == .unreachable ? 2 : 0
                out += e.target + [e.profile, UInt8(clamping: e.sources), UInt8(clamping: e.reachableSources), state]
            }
        case .sync(let items):
            out = [3]
            let shown = items.prefix(Self.maxSync)
            out.appendLE(UInt16(shown.count))
            for i in shown {
                out.appendLE(i.source.raw)
                out += i.advert.encode()
            }
        case .synced(let n):
            out = [3]
            out.appendLE(UInt16(clamping: n))
        }
        return out
    }
}
