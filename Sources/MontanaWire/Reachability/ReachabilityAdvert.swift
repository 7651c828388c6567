/// A 47-byte reachability advert (PROTOCOL.md section 9):
/// `country_code (2) ‖ asn u32 LE ‖ target (32) ‖ profile u8 ‖ reachable_num u16 LE ‖
///  reachable_den u16 LE ‖ observed_window u32 LE`.
public struct ReachabilityAdvert: Equatable, Sendable {
    public static let size = 47
    /// Profiles T0..T4 of the transport ladder.
    public static let maxProfile: UInt8 = 4
    public static let maxAgeWindows: UInt64 = 7

    public var countryCode: String
    public var asn: UInt32
    public var target: [UInt8]
    public var profile: UInt8
    public var reachableNum: UInt16
    public var reachableDen: UInt16
    public var observedWindow: UInt32

    public init(countryCode: String, asn: UInt32, target: [UInt8], profile: UInt8, reachableNum: UInt16,
                reachableDen: UInt16, observedWindow: UInt32) throws(WireError) {
        _ = try CountryCode.decode(Array(countryCode.utf8), allowUnknownVantage: true, field: "country_code")
        guard target.count == 32 else { throw .invalidField("target: must be 32 bytes") }
        guard profile <= Self.maxProfile else { throw .invalidValue(field: "profile", value: UInt64(profile)) }
        guard reachableDen > 0 else { throw .invalidValue(field: "reachable_den", value: 0) }
        guard reachableNum <= reachableDen else { throw .invalidValue(field: "reachable_num", value: UInt64(reachableNum)) }
        self.countryCode = countryCode
        self.asn = asn
        self.target = target
        self.profile = profile
        self.reachableNum = reachableNum
        self.reachableDen = reachableDen
        self.observedWindow = observedWindow
    }

    public func encode() -> [UInt8] {
        var out = Array(countryCode.utf8)
        out.appendLE(asn)
        out += target
        out.append(profile)
        out.appendLE(reachableNum)
        out.appendLE(reachableDen)
        out.appendLE(observedWindow)
        return out
    }

    /// Decodes and validates; with `currentWindow` also drops stale adverts.
    public static func decode(_ bytes: [UInt8], currentWindow: UInt64? = nil) throws(WireError) -> ReachabilityAdvert {
        guard bytes.count == size else { throw bytes.count < size ? .truncated : .trailingBytes(bytes.count - size) }
        var r = ByteReader(bytes)
        let cc = try r.readBytes(2)
        let advert = try ReachabilityAdvert(
            countryCode: String(decoding: cc, as: UTF8.self), asn: r.readLE(UInt32.self), target: r.readBytes(32),
            profile: r.readU8(), reachableNum: r.readLE(UInt16.self), reachableDen: r.readLE(UInt16.self),
            observedWindow: r.readLE(UInt32.self))
        if let currentWindow {
            guard UInt64(advert.observedWindow) <= currentWindow + 1,
                  UInt64(advert.observedWindow) + maxAgeWindows >= currentWindow else {
                throw .invalidValue(field: "observed_window (stale or in the future)", value: UInt64(advert.observedWindow))
            }
        }
        return advert
    }
}
