/// The seed's 39-byte directory entry (PROTOCOL.md section 8):
/// `exit_node_id (32) ‖ country_code (2) ‖ capacity_class u8 ‖ advertised_window u32 LE`.
public struct EgressDirectoryEntry: Equatable, Sendable {
    public static let size = 39

    public enum CapacityClass: UInt8, Sendable, CaseIterable {
        case bestEffort = 0, standard = 1, high = 2
    }

    public var exitNodeID: [UInt8]
    public var countryCode: String
    public var capacityClass: CapacityClass
    public var advertisedWindow: UInt32

    /// Rejects what `decode` would reject, so an invalid entry can never be built and signed.
    public init(exitNodeID: [UInt8], countryCode: String, capacityClass: CapacityClass, advertisedWindow: UInt32) throws(WireError) {
        guard exitNodeID.count == 32 else { throw .invalidField("exit_node_id: must be 32 bytes") }
        _ = try CountryCode.decode(Array(countryCode.utf8), allowUnknownVantage: false, field: "country_code")
        self.exitNodeID = exitNodeID
        self.countryCode = countryCode
        self.capacityClass = capacityClass
        self.advertisedWindow = advertisedWindow
    }

    public func encode() -> [UInt8] {
        var out = exitNodeID
        out += Array(countryCode.utf8)
        out.append(capacityClass.rawValue)
        out.appendLE(advertisedWindow)
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> EgressDirectoryEntry {
        guard bytes.count == size else { throw bytes.count < size ? .truncated : .trailingBytes(bytes.count - size) }
        var r = ByteReader(bytes)
        let id = try r.readBytes(32)
        let cc = try CountryCode.decode(try r.readBytes(2), allowUnknownVantage: false, field: "country_code")
        let rawCapacity = try r.readU8()
        guard let capacity = CapacityClass(rawValue: rawCapacity) else {
            throw .invalidValue(field: "capacity_class", value: UInt64(rawCapacity))
        }
        let window = try r.readLE(UInt32.self)
        return try EgressDirectoryEntry(exitNodeID: id, countryCode: cc, capacityClass: capacity, advertisedWindow: window)
    }

    /// PROTOCOL.md section 8: drop entries advertised more than 7 windows ago.
    public func isFresh(currentWindow: UInt64) -> Bool {
        UInt64(advertisedWindow) + 7 >= currentWindow
    }
}
