import Foundation
import MontanaCrypto
import NIOCore

/// One TLS record as it travelled: 5-byte header and payload (PROTOCOL.md 2.2).
public struct TLSRecord: Sendable, Equatable {
    public static let contentChangeCipherSpec: UInt8 = 0x14
    public static let contentAlert: UInt8 = 0x15
    public static let contentHandshake: UInt8 = 0x16
    public static let contentApplicationData: UInt8 = 0x17

    public var header: [UInt8]
    public var payload: [UInt8]
    public var type: UInt8 { header[0] }
    public var wire: [UInt8] { header + payload }
}

/// Splits a byte stream into TLS records, bounded: a payload is at most 16,384 + 256 bytes
/// (RFC 8446 5.2), the header's major version must be 3, and the buffer never holds more than
/// one partial record plus the last read. Anything else is `RecordError`.
public struct TLSRecordReader: Sendable {
    public static let maxPayload = 16_384 + 256
    public enum RecordError: Error, Equatable { case badHeader, tooLong }

    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public var buffered: Int { buffer.count - start }

    public mutating func append(_ bytes: [UInt8]) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start >= 64 * 1024 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer += bytes
    }

    /// The next whole record, nil when more bytes are needed.
    public mutating func next() throws(RecordError) -> TLSRecord? {
        guard buffered >= 5 else {
            if buffered >= 1, !(0x14...0x17).contains(buffer[start]) { throw .badHeader }
            if buffered >= 2, buffer[start + 1] != 0x03 { throw .badHeader }
            return nil
        }
        let type = buffer[start]
        guard (0x14...0x17).contains(type), buffer[start + 1] == 0x03 else { throw .badHeader }
        let length = Int(buffer[start + 3]) << 8 | Int(buffer[start + 4])
        guard length <= Self.maxPayload else { throw .tooLong }
        guard buffered >= 5 + length else { return nil }
        let record = TLSRecord(header: Array(buffer[start..<(start + 5)]), payload: Array(buffer[(start + 5)..<(start + 5 + length)]))
        start += 5 + length
        return record
    }

    /// What is buffered (a partial record), removed from the reader.
    public mutating func takeRemaining() -> [UInt8] {
        defer { buffer.removeAll(); start = 0 }
        return Array(buffer[start...])
    }
}

/// Reassembles handshake messages (type, 24-bit length, body) from record payloads, bounded:
/// one message ≤ 65,536 bytes, the whole flight ≤ 262,144 bytes.
struct HandshakeAssembler {
    static let maxMessage = 65_536
    static let maxFlight = 262_144
    enum AssemblyError: Error { case tooLong }
    private var pending: [UInt8] = []
    private var total = 0

    mutating func append(_ bytes: [UInt8]) throws(AssemblyError) {
        total += bytes.count
        guard total <= Self.maxFlight else { throw .tooLong }
        pending += bytes
    }

    /// The next whole message (header included), nil when more bytes are needed.
    mutating func next() throws(AssemblyError) -> (type: UInt8, message: [UInt8])? {
        guard pending.count >= 4 else { return nil }
        let n = Int(pending[1]) << 16 | Int(pending[2]) << 8 | Int(pending[3])
        guard n <= Self.maxMessage else { throw .tooLong }
        guard pending.count >= 4 + n else { return nil }
        let message = Array(pending[0..<(4 + n)])
        pending.removeFirst(4 + n)
        return (message[0], message)
    }

    var isEmpty: Bool { pending.isEmpty }
}

/// What the T1 client and front need from a ServerHello handshake message.
public struct ServerHelloInfo: Sendable, Equatable {
    /// RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
    public static let helloRetryRandom: [UInt8] = [
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
        0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
    ]
    public var random: [UInt8]
    public var cipherSuite: UInt16
    public var selectedVersion: UInt16?
    public var keyShareGroup: UInt16?
    public var keyShare: [UInt8]
    public var isHelloRetry: Bool { random == Self.helloRetryRandom }
    public var isTLS13: Bool { selectedVersion == 0x0304 }

    /// Parses a whole ServerHello message (type 2, header included); nil when malformed.
    public static func parse(_ m: [UInt8]) -> ServerHelloInfo? {
        guard m.count >= 4, m[0] == 0x02, m.count == 4 + (Int(m[1]) << 16 | Int(m[2]) << 8 | Int(m[3])) else { return nil }
        var r = ClientHelloParser.Reader(m, 4)
        guard (try? r.u16()) != nil, let random = try? r.take(32), (try? r.vec8()) != nil,
              let suite = try? r.u16(), (try? r.u8()) != nil else { return nil }
        var info = ServerHelloInfo(random: random, cipherSuite: suite, selectedVersion: nil, keyShareGroup: nil, keyShare: [])
        guard r.remaining > 0 else { return info }
        guard let extLen = try? r.u16(), Int(extLen) == r.remaining else { return nil }
        while r.remaining > 0 {
            guard let t = try? r.u16(), let body = try? r.vec16() else { return nil }
            var e = ClientHelloParser.Reader(body)
            switch t {
            case 0x002b:
                guard let v = try? e.u16(), e.remaining == 0 else { return nil }
                info.selectedVersion = v
            case 0x0033:
                guard let g = try? e.u16() else { return nil }
                info.keyShareGroup = g
                if e.remaining > 0 {   // a HelloRetryRequest carries only the group
                    guard let share = try? e.vec16(), e.remaining == 0 else { return nil }
                    info.keyShare = share
                }
            default:
                break
            }
        }
        return info
    }
}

/// T1 frames after the switch (PROTOCOL.md 2.2): the carrier's bytes in TLS 1.3-shaped records
/// (`17 03 03 len`, ChaCha20-Poly1305, inner type 0x17), at most 16,384 carrier bytes per record.
/// The client also drops the cover's own post-handshake records (tickets) that the front relays
/// for a short grace period after the switch: a record that does not open under the T1 key but
/// opens under the cover's server application key is dropped (at most `maxCoverRecords`).
public struct T1FrameState: Sendable {
    public static let maxPlaintext = 16_384
    public static let maxCoverRecords = 16

    public enum FrameError: Error, Equatable { case badRecord, open, tooManyCoverRecords }

    var sealer: TLS13.RecordCipher
    var opener: TLS13.RecordCipher
    var cover: TLS13.RecordCipher?
    var coverRecordsLeft = T1FrameState.maxCoverRecords
    var reader = TLSRecordReader()
    public private(set) var droppedCoverRecords = 0

    init(sealer: TLS13.RecordCipher, opener: TLS13.RecordCipher, cover: TLS13.RecordCipher?) {
        self.sealer = sealer
        self.opener = opener
        self.cover = cover
    }

    /// Records for `content` (split at 16,384 bytes).
    public mutating func seal(_ content: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(content.count + (content.count / Self.maxPlaintext + 1) * 22)
        var i = 0
        repeat {
            let end = min(content.count, i + Self.maxPlaintext)
            out += try sealer.seal(Array(content[i..<end]), type: TLSRecord.contentApplicationData)
            i = end
        } while i < content.count
        return out
    }

    /// The bulk path: `content`'s readable bytes as records (split at 16,384) appended to `out`,
    /// with no intermediate arrays (`RecordCipher.sealParts`).
    public mutating func seal(_ content: ByteBuffer, into out: inout ByteBuffer) throws {
        var rest = content
        out.reserveCapacity(minimumWritableBytes: content.readableBytes + (content.readableBytes / Self.maxPlaintext + 1) * 22)
        repeat {
            let n = min(rest.readableBytes, Self.maxPlaintext)
            let parts = try rest.withUnsafeReadableBytes { bytes in
                try sealer.sealParts(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), type: TLSRecord.contentApplicationData)
            }
            rest.moveReaderIndex(forwardBy: n)
            out.writeBytes(parts.header)
            out.writeBytes(parts.ciphertext)
            out.writeBytes(parts.tag)
        } while rest.readableBytes > 0
    }

    /// The carrier bytes in `bytes` (whole records only; a partial one waits for more).
    public mutating func open(_ bytes: [UInt8]) throws(FrameError) -> [UInt8] {
        reader.append(bytes)
        var out: [UInt8] = []
        while true {
            let next: TLSRecord?
            do { next = try reader.next() } catch { throw .badRecord }
            guard let record = next else { return out }
            guard record.type == TLSRecord.contentApplicationData else { throw .badRecord }
            if let (content, type) = try? opener.open(header: record.header, payload: record.payload) {
                guard type == TLSRecord.contentApplicationData else { throw .badRecord }
                out += content
                continue
            }
            guard cover != nil, coverRecordsLeft > 0 else { throw .open }
            guard (try? cover!.open(header: record.header, payload: record.payload)) != nil else { throw .open }
            coverRecordsLeft -= 1
            droppedCoverRecords += 1
        }
    }
}
