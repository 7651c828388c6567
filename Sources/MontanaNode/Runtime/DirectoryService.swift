import MontanaCrypto
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore

/// `/montana/directory/1.0.0`: sends the signed records this node knows, each as
/// `uvarint len ‖ SignedRecord`, then FIN. Our own record is re-signed every 5 minutes
/// (liveness, PROTOCOL.md section 8).
final class DirectoryRecords: Sendable {
    static let resignInterval: UInt64 = 300
    static let lifetime: UInt64 = 3600

    private let identity: IdentityKey
    private let makeRecord: @Sendable (UInt64) throws -> DirectoryRecord?
    private let cache = NIOLockedValueBox<(signedAt: UInt64, bytes: [UInt8])?>(nil)

    init(identity: IdentityKey, makeRecord: @escaping @Sendable (UInt64) throws -> DirectoryRecord?) {
        self.identity = identity
        self.makeRecord = makeRecord
    }

    /// The records to serve at `now`. A cached record is reused while it is younger than
    /// `resignInterval`; if the wall clock stepped back past its signing time it is re-signed
    /// (never a negative age, which would trap on `UInt64`).
    func current(now: UInt64 = WallClock.now()) -> [[UInt8]] {
        if let cached = cache.withLockedValue({ $0 }), Self.isFresh(signedAt: cached.signedAt, now: now) { return [cached.bytes] }
        guard let record = try? makeRecord(now), let signed = try? RecordSigner.sign(record, with: identity).encode() else { return [] }
        cache.withLockedValue { $0 = (now, signed) }
        return [signed]
    }

    static func isFresh(signedAt: UInt64, now: UInt64) -> Bool {
        now >= signedAt && now - signedAt < resignInterval
    }
}

struct DirectoryService: StreamService {
    let protocolName = "/montana/directory/1.0.0"
    let records: DirectoryRecords

    func serve(_ stream: MuxStream, session: MuxHandler) {
        var out = ByteBuffer()
        for record in records.current() {
            LengthPrefixedDecoder.encode(ByteBuffer(bytes: record), into: &out)
        }
        stream.onData = { [weak stream] b in stream?.consumed(b.readableBytes) }
        stream.write(out)
        stream.closeWrite()
        stream.startReading()
    }
}
