/// Maps an address to the country it is located in. Exits and attesters use it to geolocate
/// egress addresses (PROTOCOL.md section 8.4); clients use it for their reachability vantage
/// (section 9).
public protocol GeoIPDatabase: Sendable {
    /// `address` is 4 (IPv4) or 16 (IPv6) bytes in network order. The result is an *assigned*
    /// ISO 3166-1 alpha-2 code (upper case) or nil: unknown address, unassigned or missing code,
    /// or any other length.
    func country(for address: [UInt8]) -> String?
    /// The autonomous system the address belongs to, when the database has it
    /// (`autonomous_system_number`, as GeoLite2-ASN and DB-IP's ASN databases do); nil otherwise.
    func asn(for address: [UInt8]) -> UInt32?
}

extension GeoIPDatabase {
    public func asn(for address: [UInt8]) -> UInt32? { nil }
}

extension GeoIPDatabase {
    /// The country of an address literal (`"192.0.2.1"`, `"2001:db8::1"`); nil for names and
    /// anything else that is not a literal.
    public func country(forLiteral text: String) -> String? {
        IPLiteral.parse(text).flatMap { country(for: $0) }
    }
}

public enum GeoIP {
    /// Opens a GeoIP database by its file name: `*.mmdb` is a MaxMind/DB-IP database (read with
    /// libmaxminddb), anything else a `CIDR,CC` text file (`CSVGeoIP`).
    public static func open(path: String) throws(GeoIPError) -> any GeoIPDatabase {
        if path.lowercased().hasSuffix(".mmdb") {
            return try MaxMindGeoIP(path: path)
        }
        return try CSVGeoIP(path: path)
    }
}

/// Why a GeoIP database could not be used. Every case names the file (and for text files the line).
public enum GeoIPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file cannot be read, or is too large.
    case file(path: String, problem: String)
    /// A line of a `CIDR,CC` file is wrong (1-based line number).
    case line(path: String, line: Int, problem: String)
    /// libmaxminddb refused the file or its metadata.
    case database(path: String, problem: String)

    public var description: String {
        switch self {
        case .file(let path, let problem): return "\(path): \(problem)"
        case .line(let path, let line, let problem): return "\(path):\(line): \(problem)"
        case .database(let path, let problem): return "\(path): not a usable MaxMind database: \(problem)"
        }
    }
}
