import Foundation
import Crypto
import MontanaWire

/// One direction of session transport protection (PROTOCOL.md section 5.1):
/// `u16 BE len ‖ AEAD(k, nonce = 0⁴ ‖ u64 BE counter, aad = empty, plaintext)`.
public struct TransportCipher: Sendable {
    public static let maxPlaintext = 65519
    public static let tagSize = 16

    private let key: SymmetricKey
    public private(set) var counter: UInt64

    public init(key: [UInt8], counter: UInt64 = 0) {
        self.key = SymmetricKey(data: key)
        self.counter = counter
    }

    private mutating func nextNonce() throws(FrameError) -> ChaChaPoly.Nonce {
        // Abort before the counter would wrap: a reused nonce would break the AEAD.
        guard counter < UInt64.max else { throw .counterExhausted }
        defer { counter += 1 }
        return try! ChaChaPoly.Nonce(data: [0, 0, 0, 0] + [UInt8].be(counter))
    }

    /// Seals one frame including its length prefix.
    public mutating func seal<D: DataProtocol>(_ plaintext: D) throws(FrameError) -> [UInt8] {
        let parts = try sealParts(plaintext)
        var out: [UInt8] = []
        out.reserveCapacity(2 + parts.ciphertext.count + Self.tagSize)
        out.appendBE(parts.length)
        out += parts.ciphertext
        out += parts.tag
        return out
    }

    /// Seals one frame and returns its pieces, so a caller can write them straight into its own
    /// buffer (the bulk data path avoids one copy per frame this way).
    public mutating func sealParts<D: DataProtocol>(_ plaintext: D) throws(FrameError) -> (length: UInt16, ciphertext: Data, tag: Data) {
        guard plaintext.count <= Self.maxPlaintext else { throw .plaintextTooLong(plaintext.count) }
        let nonce = try nextNonce()
        guard let box = try? ChaChaPoly.seal(plaintext, using: key, nonce: nonce) else { throw .sealFailed }
        return (UInt16(plaintext.count + Self.tagSize), box.ciphertext, box.tag)
    }

    /// Opens the body of one frame (without its length prefix).
    public mutating func open(_ body: ArraySlice<UInt8>) throws(FrameError) -> [UInt8] {
        Array(try openData(body))
    }

    /// `open` without the final copy into an array.
    public mutating func openData(_ body: ArraySlice<UInt8>) throws(FrameError) -> Data {
        guard body.count >= Self.tagSize else { throw .frameTooShort(body.count) }
        let nonce = try nextNonce()
        do {
            let box = try ChaChaPoly.SealedBox(nonce: nonce, ciphertext: body.dropLast(Self.tagSize), tag: body.suffix(Self.tagSize))
            return try ChaChaPoly.open(box, using: key)
        } catch {
            throw .authenticationFailed
        }
    }
}

public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case counterExhausted
    case plaintextTooLong(Int)
    case frameTooShort(Int)
    case sealFailed
    case authenticationFailed
    case malformedRecord(String)
    case unknownRecordType(UInt8)

    public var description: String {
        switch self {
        case .counterExhausted: return "frame counter exhausted; session must end"
        case .plaintextTooLong(let n): return "frame plaintext \(n) bytes exceeds 65519"
        case .frameTooShort(let n): return "frame of \(n) bytes is shorter than its tag"
        case .sealFailed: return "AEAD seal failed"
        case .authenticationFailed: return "frame failed authentication"
        case .malformedRecord(let s): return "malformed \(s) record"
        case .unknownRecordType(let t): return "unknown frame record type 0x\(String(t, radix: 16))"
        }
    }
}

/// The plaintext records inside transport frames: `type u8 ‖ body`.
public enum TransportRecord: Equatable, Sendable {
    case data([UInt8])
    /// Total DATA body bytes received in order (u64 LE).
    case ack(UInt64)
    case padding(Int)
    case close(UInt8)

    public static let maxData = TransportCipher.maxPlaintext - 1

    public enum CloseReason {
        public static let normal: UInt8 = 0
        public static let error: UInt8 = 1
        public static let shutdown: UInt8 = 2
    }

    public func encode() -> [UInt8] {
        switch self {
        case .data(let bytes): return [0x00] + bytes
        case .ack(let total): return [0x01] + [UInt8].le(total)
        case .padding(let n): return [0x02] + [UInt8](repeating: 0, count: n)
        case .close(let reason): return [0x03, reason]
        }
    }

    public static func decode(_ plaintext: [UInt8]) throws(FrameError) -> TransportRecord {
        guard let type = plaintext.first else { throw .malformedRecord("empty") }
        switch type {
        case 0x00: return .data(Array(plaintext[1...]))
        case 0x01:
            guard plaintext.count == 9 else { throw .malformedRecord("ACK") }
            var r = ByteReader(plaintext[1...])
            return .ack(try! r.readLE(UInt64.self))
        case 0x02: return .padding(plaintext.count - 1)
        case 0x03:
            guard plaintext.count == 2 else { throw .malformedRecord("CLOSE") }
            return .close(plaintext[1])
        default: throw .unknownRecordType(type)
        }
    }
}

/// Splits a byte stream into frame bodies: feed bytes, take complete frames. Bounded: it never
/// holds more than one maximal frame beyond what it was given.
public struct FrameDeframer: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public var bufferedCount: Int { buffer.count - start }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete `u16 BE len`-prefixed body, or nil if more bytes are needed.
    public mutating func nextBody() -> ArraySlice<UInt8>? {
        guard buffer.count - start >= 2 else { compact(); return nil }
        let length = Int(buffer[start]) << 8 | Int(buffer[start + 1])
        guard buffer.count - start >= 2 + length else { compact(); return nil }
        let body = buffer[(start + 2)..<(start + 2 + length)]
        start += 2 + length
        return body
    }

    /// Takes every buffered byte, complete frame or not (used when the framing changes, e.g.
    /// from handshake messages to transport frames).
    public mutating func takeAll() -> [UInt8] {
        defer {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        return Array(buffer[start...])
    }

    private mutating func compact() {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}
