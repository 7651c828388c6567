import CMaxMindDB
import MontanaWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A MaxMind-format (`.mmdb`) database: GeoLite2-Country/City, DB-IP Lite and their kin, read with
/// libmaxminddb (Debian's `libmaxminddb-dev`). The country is the record's `country.iso_code`; a
/// record without one (say, an anycast range that only names a continent) is unknown, and so is a
/// code that is not an assigned ISO 3166-1 alpha-2 code. `registered_country` is deliberately not
/// used: it names where a block was registered, not where it is used, which is what attestations
/// are about.
///
/// The file is memory-mapped once (`MMDB_MODE_MMAP`) and closed in `deinit`. libmaxminddb's
/// lookups only read the mapped file, so concurrent `country(for:)` calls need no lock.
public final class MaxMindGeoIP: GeoIPDatabase, @unchecked Sendable {
    private let database: UnsafeMutablePointer<MMDB_s>
    public let path: String
    /// The file's `database_type` metadata, e.g. `GeoLite2-Country`.
    public let databaseType: String

    public init(path: String) throws(GeoIPError) {
        let database = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
        database.initialize(to: MMDB_s())
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), database)
        guard status == MMDB_SUCCESS else {
            let reason = String(cString: MMDB_strerror(status))
            database.deinitialize(count: 1)
            database.deallocate()
            if status == MMDB_FILE_OPEN_ERROR { throw .file(path: path, problem: "cannot open (\(reason))") }
            throw .database(path: path, problem: reason)
        }
        self.database = database
        self.path = path
        self.databaseType = database.pointee.metadata.database_type.map { String(cString: $0) } ?? ""
    }

    deinit {
        MMDB_close(database)
        database.deinitialize(count: 1)
        database.deallocate()
    }

    /// The database entry for an address (IPv4 looked up as itself), nil when none.
    private func entry(for address: [UInt8]) -> MMDB_lookup_result_s? {
        // Databases map IPv4 into IPv6 in different places (GeoLite2 aliases ::ffff:0:0/96, others
        // only ::/96); looking up the IPv4 address itself works with all of them.
        if let mapped = IPLiteral.mappedIPv4(address) { return entry(for: mapped) }
        var error: Int32 = MMDB_SUCCESS
        var result: MMDB_lookup_result_s
        switch address.count {
        case 4:
            var socket = sockaddr_in()
            socket.sin_family = sa_family_t(AF_INET)
            withUnsafeMutableBytes(of: &socket.sin_addr) { $0.copyBytes(from: address) }
            result = withUnsafePointer(to: &socket) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(database, $0, &error) }
            }
        case 16:
            var socket = sockaddr_in6()
            socket.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &socket.sin6_addr) { $0.copyBytes(from: address) }
            result = withUnsafePointer(to: &socket) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(database, $0, &error) }
            }
        default:
            return nil
        }
        // An IPv6 address in an IPv4-only database is an error here, not a crash: unknown.
        guard error == MMDB_SUCCESS, result.found_entry else { return nil }
        return result
    }

    public func asn(for address: [UInt8]) -> UInt32? {
        guard var result = entry(for: address) else { return nil }
        var data = MMDB_entry_data_s()
        let status = "autonomous_system_number".withCString { field in
            var lookupPath: [UnsafePointer<CChar>?] = [field, nil]
            return MMDB_aget_value(&result.entry, &data, &lookupPath)
        }
        guard status == MMDB_SUCCESS, data.has_data else { return nil }
        switch Int32(data.type) {
        case MMDB_DATA_TYPE_UINT32: return data.uint32
        case MMDB_DATA_TYPE_UINT16: return UInt32(data.uint16)
        default: return nil
        }
    }

    public func country(for address: [UInt8]) -> String? {
        guard var result = entry(for: address) else { return nil }
        var data = MMDB_entry_data_s()
        let status = "country".withCString { country in
            "iso_code".withCString { isoCode in
                var lookupPath: [UnsafePointer<CChar>?] = [country, isoCode, nil]
                return MMDB_aget_value(&result.entry, &data, &lookupPath)
            }
        }
        guard status == MMDB_SUCCESS, data.has_data, data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING),
              data.data_size == 2, let text = data.utf8_string else { return nil }
        let code = text.withMemoryRebound(to: UInt8.self, capacity: 2) { String(decoding: UnsafeBufferPointer(start: $0, count: 2), as: UTF8.self) }
            .uppercased()
        return CountryCode.isAssigned(code) ? code : nil
    }
}
