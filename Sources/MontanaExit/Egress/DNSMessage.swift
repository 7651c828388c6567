/// The small part of DNS (RFC 1035) a stub resolver needs: one question out, one answer in.
/// Queries carry one question and an EDNS(0) OPT record (RFC 6891) advertising
/// `DNSMessage.maxResponseSize`; responses are parsed by a bounds-checked reader that never
/// traps, whatever the bytes.
public enum DNSRecordType: UInt16, Sendable, Hashable {
    case a = 1
    case cname = 5
    case soa = 6
    case aaaa = 28

    /// Address length of an A or AAAA record's data.
    var addressLength: Int? {
        switch self {
        case .a: return 4
        case .aaaa: return 16
        default: return nil
        }
    }
}

public enum DNSMessage {
    /// The largest response accepted (and advertised in EDNS(0)); bigger datagrams are dropped
    /// unparsed. 4096 bytes is the usual EDNS buffer and far more than A/AAAA answers need.
    public static let maxResponseSize = 4096
    /// RFC 1035 2.3.4: a name is at most 255 bytes on the wire.
    static let maxNameWireLength = 255
    /// RFC 1035 2.3.4: a label is at most 63 bytes.
    static let maxLabelLength = 63
    /// Compression pointers followed while reading one name; a name has at most 127 labels,
    /// so more jumps than that can only be a loop.
    static let maxPointerJumps = 127
    /// CNAME hops followed inside one answer (a chain longer than this is treated as no answer;
    /// common resolvers stop at 8–16).
    static let maxCNAMEChain = 16
    /// Records read from one answer section; 4096 bytes hold at most ~370 minimal records.
    static let maxRecords = 512

    static let classIN: UInt16 = 1
    static let typeOPT: UInt16 = 41

    /// Response codes the resolver tells apart.
    public enum ResponseCode: Sendable, Equatable {
        case noError, nameError, other(UInt8)
    }

    /// Splits a host name into DNS labels (a trailing dot is allowed); nil when it cannot be a
    /// DNS name: an empty label, a label over 63 bytes, or over 255 bytes on the wire.
    public static func labels(of name: String) -> [[UInt8]]? {
        var text = Array(name.utf8)
        if text.last == UInt8(ascii: ".") { text.removeLast() }
        guard !text.isEmpty else { return nil }
        var labels: [[UInt8]] = []
        var wire = 1
        for part in text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !part.isEmpty, part.count <= maxLabelLength else { return nil }
            labels.append(part.map(asciiLower))
            wire += 1 + part.count
        }
        guard wire <= maxNameWireLength else { return nil }
        return labels
    }

    static func asciiLower(_ b: UInt8) -> UInt8 {
        (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b
    }

    /// A recursive query for `labels`/`type` with id `id`: RD set, one question, EDNS(0) OPT.
    public static func query(id: UInt16, labels: [[UInt8]], type: DNSRecordType) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + 2 + labels.reduce(0) { $0 + 1 + $1.count } + 4 + 11)
        appendU16(&out, id)
        appendU16(&out, 0x0100) // RD
        appendU16(&out, 1) // QDCOUNT
        appendU16(&out, 0) // ANCOUNT
        appendU16(&out, 0) // NSCOUNT
        appendU16(&out, 1) // ARCOUNT: the OPT record
        for label in labels {
            out.append(UInt8(truncatingIfNeeded: label.count)) // labels(of:) bounds each to 63
            out += label
        }
        out.append(0)
        appendU16(&out, type.rawValue)
        appendU16(&out, classIN)
        // OPT: root name, type 41, class = UDP payload size, TTL 0 (ext-rcode, version, flags), no data.
        out.append(0)
        appendU16(&out, typeOPT)
        appendU16(&out, UInt16(maxResponseSize))
        out += [0, 0, 0, 0, 0, 0]
        return out
    }

    static func appendU16(_ out: inout [UInt8], _ v: UInt16) {
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v))
    }

    /// The parts of a response header used to match it to a query before anything else is read.
    public struct Header: Sendable, Equatable {
        public var id: UInt16
        public var isResponse: Bool
        public var opcode: UInt8
        public var truncated: Bool
        public var rcode: ResponseCode
        public var questions: Int
        public var answers: Int
        public var authorities: Int
    }

    /// What one response says about the question it answers.
    public enum Answer: Sendable, Equatable {
        /// Addresses of the asked type at the end of the CNAME chain; `ttl` is the smallest TTL
        /// of every record used (chain and addresses), in seconds.
        case addresses([[UInt8]], ttl: UInt32)
        /// NXDOMAIN (`nameExists` false) or NODATA; `ttl` from the SOA in the authority
        /// section (RFC 2308 §5: min of its TTL and MINIMUM), nil without one.
        case negative(nameExists: Bool, ttl: UInt32?)
    }

    public enum ParseError: Error, Equatable {
        /// Too short, a count or length pointing past the end, a bad name, a pointer loop.
        case malformed
        /// Not a response to this query (id, QR, opcode or question differ).
        case mismatch
        /// TC set: the answer did not fit; the resolver treats it as a failure of that server.
        case truncated
        /// SERVFAIL, REFUSED, NOTIMP and the like.
        case serverFailure(UInt8)
    }

    /// Reads the header; nil when fewer than 12 bytes.
    public static func header(_ bytes: [UInt8]) -> Header? {
        var r = DNSReader(bytes)
        guard let id = r.u16(), let flags = r.u16(), let qd = r.u16(), let an = r.u16(), let ns = r.u16(), r.u16() != nil else { return nil }
        let rc = UInt8(truncatingIfNeeded: flags & 0x000F)
        let code: ResponseCode = rc == 0 ? .noError : rc == 3 ? .nameError : .other(rc)
        return Header(id: id, isResponse: flags & 0x8000 != 0, opcode: UInt8(truncatingIfNeeded: (flags >> 11) & 0x0F),
                      truncated: flags & 0x0200 != 0, rcode: code, questions: Int(qd), answers: Int(an), authorities: Int(ns))
    }

    /// Parses `bytes` as the response to the query (`id`, `labels`, `type`) and follows the
    /// CNAME chain from the question name within the answer section.
    public static func parseResponse(_ bytes: [UInt8], id: UInt16, labels: [[UInt8]], type: DNSRecordType) throws(ParseError) -> Answer {
        guard bytes.count <= maxResponseSize, let header = header(bytes) else { throw .malformed }
        guard header.id == id, header.isResponse, header.opcode == 0, header.questions == 1 else { throw .mismatch }
        var r = DNSReader(bytes)
        r.offset = 12
        guard let qname = r.name(), let qtype = r.u16(), let qclass = r.u16() else { throw .malformed }
        guard qname == labels, qtype == type.rawValue, qclass == classIN else { throw .mismatch }
        if header.truncated { throw .truncated }
        switch header.rcode {
        case .noError, .nameError: break
        case .other(let code): throw .serverFailure(code)
        }
        guard header.answers <= maxRecords, header.authorities <= maxRecords else { throw .malformed }

        var cnames: [[[UInt8]]: ([[UInt8]], UInt32)] = [:]
        var addresses: [[[UInt8]]: [([UInt8], UInt32)]] = [:]
        for _ in 0..<header.answers {
            guard let record = r.record() else { throw .malformed }
            guard record.rclass == classIN else { continue }
            if record.type == DNSRecordType.cname.rawValue {
                var inner = r
                inner.offset = record.dataOffset
                guard let target = inner.name(), inner.offset == record.dataOffset + record.dataLength else { throw .malformed }
                // A second CNAME for the same owner is a broken zone; keep the first.
                if cnames[record.name] == nil { cnames[record.name] = (target, record.ttl) }
            } else if record.type == type.rawValue, let length = type.addressLength {
                guard record.dataLength == length else { throw .malformed }
                addresses[record.name, default: []].append((Array(bytes[record.dataOffset..<(record.dataOffset + length)]), record.ttl))
            }
        }
        var soaTTL: UInt32?
        for _ in 0..<header.authorities {
            guard let record = r.record() else { throw .malformed }
            guard record.type == DNSRecordType.soa.rawValue, record.rclass == classIN, soaTTL == nil else { continue }
            var inner = r
            inner.offset = record.dataOffset
            // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
            guard inner.name() != nil, inner.name() != nil, inner.skip(16), let minimum = inner.u32(),
                  inner.offset == record.dataOffset + record.dataLength else { throw .malformed }
            soaTTL = min(record.ttl, minimum)
        }

        var name = labels
        var ttl = UInt32.max
        var hops = 0
        while let link = cnames[name], addresses[name] == nil {
            hops += 1
            guard hops <= maxCNAMEChain else { return .negative(nameExists: true, ttl: soaTTL) }
            ttl = min(ttl, link.1)
            name = link.0
        }
        if let found = addresses[name], !found.isEmpty {
            var seen = Set<[UInt8]>()
            var list: [[UInt8]] = []
            for (address, recordTTL) in found {
                ttl = min(ttl, recordTTL)
                if seen.insert(address).inserted { list.append(address) }
            }
            return .addresses(list, ttl: ttl)
        }
        // A CNAME chain that leads nowhere in this answer: the target's data is missing. With
        // NXDOMAIN the rcode is about the chain's end (RFC 6604), so the name itself exists.
        let nameExists = header.rcode == .noError || hops > 0
        return .negative(nameExists: nameExists, ttl: soaTTL)
    }
}

/// A cursor over untrusted bytes: every read checks the bounds and returns nil instead of trapping.
struct DNSReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func u8() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }

    /// A possibly compressed name, lower-cased; the cursor ends after its first occurrence.
    /// Pointers must point backwards (so no loops), at most `maxPointerJumps` of them, and the
    /// name at most 255 bytes.
    mutating func name() -> [[UInt8]]? {
        var labels: [[UInt8]] = []
        var position = offset
        var resume: Int?
        var jumps = 0
        var wire = 1
        while true {
            guard position < bytes.count else { return nil }
            let length = bytes[position]
            if length & 0xC0 == 0xC0 {
                guard position + 1 < bytes.count else { return nil }
                let target = Int(length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < position, jumps < DNSMessage.maxPointerJumps else { return nil }
                jumps += 1
                if resume == nil { resume = position + 2 }
                position = target
                continue
            }
            guard length & 0xC0 == 0 else { return nil } // 0x40/0x80: extended label types, not supported
            if length == 0 {
                offset = resume ?? (position + 1)
                return labels
            }
            let count = Int(length)
            guard position + 1 + count <= bytes.count else { return nil }
            wire += 1 + count
            guard wire <= DNSMessage.maxNameWireLength else { return nil }
            labels.append(bytes[(position + 1)..<(position + 1 + count)].map(DNSMessage.asciiLower))
            position += 1 + count
        }
    }

    struct Record {
        var name: [[UInt8]]
        var type: UInt16
        var rclass: UInt16
        var ttl: UInt32
        var dataOffset: Int
        var dataLength: Int
    }

    /// One resource record; the cursor moves past its data.
    mutating func record() -> Record? {
        guard let name = name(), let type = u16(), let rclass = u16(), let rawTTL = u32(), let length = u16() else { return nil }
        let start = offset
        guard skip(Int(length)) else { return nil }
        // RFC 2181 §8: a TTL with the top bit set is treated as zero.
        let ttl = rawTTL & 0x8000_0000 != 0 ? 0 : rawTTL
        return Record(name: name, type: type, rclass: rclass, ttl: ttl, dataOffset: start, dataLength: Int(length))
    }
}
