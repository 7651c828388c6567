/// One message of directory gossip on `/montana/peer-exchange/1.0.0` (PROTOCOL.md section 8.6).
/// On a stream each frame is preceded by its uvarint length; that framing is the stream's job.
///
/// `{ record(1): bytes SignedRecord; attestation(2): bytes SignedAttestation;
///    digest(3): bytes (packed DigestEntry × n); end(4): varint 1; wait_seconds(5): varint ≤ 60;
///    self_record(6): bytes SignedRecord }`
///
/// Every field is optional; unknown fields are skipped. The record and attestation bytes are
/// opaque here: the directory validates them.
public struct SyncFrame: Equatable, Sendable {
    /// A digest of 4096 records is 4096 × 44 = 180 224 bytes; 256 KiB holds it with room.
    public static let maxFrameBytes = 256 * 1024
    /// A long poll waits at most a minute.
    public static let maxWaitSeconds: UInt64 = 60

    public var record: [UInt8]?
    public var attestation: [UInt8]?
    /// `DigestEntry.encode` of the sender's digest.
    public var digest: [UInt8]?
    /// 1 when present: the sender has nothing more to send.
    public var end: UInt64?
    public var waitSeconds: UInt64?
    /// The sender's own record, so a node that does not know it yet can admit it.
    public var selfRecord: [UInt8]?

    public init(record: [UInt8]? = nil, attestation: [UInt8]? = nil, digest: [UInt8]? = nil, end: UInt64? = nil,
                waitSeconds: UInt64? = nil, selfRecord: [UInt8]? = nil) {
        self.record = record
        self.attestation = attestation
        self.digest = digest
        self.end = end
        self.waitSeconds = waitSeconds
        self.selfRecord = selfRecord
    }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, ifSet: record)
        w.lengthDelimited(2, ifSet: attestation)
        w.lengthDelimited(3, ifSet: digest)
        w.varint(4, ifSet: end)
        w.varint(5, ifSet: waitSeconds)
        w.lengthDelimited(6, ifSet: selfRecord)
        return w.bytes
    }

    /// Rejects frames over `maxFrameBytes`, `end` other than 1, `wait_seconds` over 60 and a
    /// digest whose length is not a multiple of 44.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> SyncFrame {
        guard bytes.count <= maxFrameBytes else { throw .tooLong(field: "sync_frame", length: bytes.count, limit: maxFrameBytes) }
        var f = SyncFrame()
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: f.record = try value.asBytes("sync.record")
            case 2: f.attestation = try value.asBytes("sync.attestation")
            case 3:
                let d = try value.asBytes("sync.digest")
                guard d.count % DigestEntry.size == 0 else { throw .invalidField("sync.digest: length not a multiple of \(DigestEntry.size)") }
                f.digest = d
            case 4:
                let v = try value.asVarint("sync.end")
                guard v == 1 else { throw .invalidValue(field: "sync.end", value: v) }
                f.end = v
            case 5:
                let v = try value.asVarint("sync.wait_seconds")
                guard v <= maxWaitSeconds else { throw .invalidValue(field: "sync.wait_seconds", value: v) }
                f.waitSeconds = v
            case 6: f.selfRecord = try value.asBytes("sync.self_record")
            default: break
            }
        }
        return f
    }
}

/// One record in a gossip digest: `node_id (32) ‖ window u32 LE ‖ attestation_digest (8)`, 44
/// bytes. `window` is the record's `advertised_window`; `attestation_digest` is the first 8 bytes
/// of SHA-256 over the sorted `attester ‖ window u32 LE` of the attestations held about the node
/// (8 zero bytes when none).
public struct DigestEntry: Equatable, Sendable {
    public static let size = 44

    public var nodeID: [UInt8]
    public var window: UInt32
    public var attestationDigest: [UInt8]

    public init(nodeID: [UInt8], window: UInt32, attestationDigest: [UInt8]) {
        self.nodeID = nodeID
        self.window = window
        self.attestationDigest = attestationDigest
    }

    /// Entries are written as given; a node id or digest of the wrong length is padded or cut to
    /// 32 and 8 bytes so the packing never misaligns (the store only builds correct ones).
    public static func encode(_ entries: [DigestEntry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.count * size)
        for e in entries {
            out += fit(e.nodeID, 32)
            out.appendLE(e.window)
            out += fit(e.attestationDigest, 8)
        }
        return out
    }

    private static func fit(_ b: [UInt8], _ n: Int) -> [UInt8] {
        b.count == n ? b : Array((b + [UInt8](repeating: 0, count: n)).prefix(n))
    }

    /// Rejects a length that is not a multiple of 44. The count is bounded by the frame size.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> [DigestEntry] {
        guard bytes.count % size == 0 else {
            throw .invalidField("digest: length \(bytes.count) is not a multiple of \(size)")
        }
        var r = ByteReader(bytes)
        var out: [DigestEntry] = []
        out.reserveCapacity(bytes.count / size)
        while !r.isAtEnd {
            let id = try r.readBytes(32)
            let window = try r.readLE(UInt32.self)
            let digest = try r.readBytes(8)
            out.append(DigestEntry(nodeID: id, window: window, attestationDigest: digest))
        }
        return out
    }
}
