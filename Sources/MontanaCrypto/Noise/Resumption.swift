import Crypto
import Foundation

/// The resumption messages of PROTOCOL.md 5.3, sans I/O: a session survives the loss of its
/// circuit when the initiator proves, on a new circuit, that it holds the session's
/// `resume_secret`, and the responder proves the same back. Integers are little-endian (section 0);
/// the messages travel behind the usual `u16 BE` length, which these functions do not add.
///
/// Not wired into the session layer yet (issue 8 item 4): today `features` advertises 0 and a
/// resume first message is refused, so nothing sends or accepts these.
public enum Resumption {
    /// `0x02 ‖ session_id (16) ‖ nonce_i (32) ‖ rx u64 ‖ HMAC (32)`.
    public static let requestSize = 1 + 16 + 32 + 8 + 32
    /// `status ‖ nonce_r (32) ‖ rx u64 ‖ HMAC (32)`, or `status ‖ 72 zero bytes` when refused.
    public static let answerSize = 1 + 32 + 8 + 32

    public enum Status: UInt8, Sendable {
        case ok = 0
        case unknownSession = 1
        case offsetLost = 2
    }

    public enum Failure: Error, Equatable, Sendable {
        case wrongSize
        case notAResume
        case badMAC
        case unknownStatus(UInt8)
    }

    public struct Request: Equatable, Sendable {
        public let sessionID: [UInt8]
        public let nonce: [UInt8]
        /// DATA bytes the initiator received in order.
        public let received: UInt64
        public let mac: [UInt8]
    }

    public struct Answer: Equatable, Sendable {
        public let status: Status
        public let nonce: [UInt8]
        /// DATA bytes the responder received in order (0 when refused).
        public let received: UInt64
    }

    private static func mac(_ secret: [UInt8], _ parts: [[UInt8]]) -> [UInt8] {
        var h = HMAC<SHA256>(key: SymmetricKey(data: secret))
        for p in parts { h.update(data: p) }
        return Array(h.finalize())
    }

    private static func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    private static func readLE(_ b: ArraySlice<UInt8>) -> UInt64 {
        b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// The initiator's message; `nonce` (32 random bytes) must be fresh for every attempt.
    public static func request(sessionID: [UInt8], resumeSecret: [UInt8], received: UInt64, nonce: [UInt8]) -> [UInt8] {
        precondition(sessionID.count == 16 && nonce.count == 32, "session_id is 16 bytes, nonce_i 32")
        let tag = mac(resumeSecret, [Array("montana-resume-i".utf8), sessionID, nonce, le(received)])
        return [NoisePQ.kindResume] + sessionID + nonce + le(received) + tag
    }

    /// Splits a request; the MAC is checked by `verify` once the session is found by its id.
    public static func parseRequest(_ bytes: [UInt8]) throws(Failure) -> Request {
        guard bytes.count == requestSize else { throw .wrongSize }
        guard bytes[0] == NoisePQ.kindResume else { throw .notAResume }
        return Request(sessionID: Array(bytes[1..<17]), nonce: Array(bytes[17..<49]), received: readLE(bytes[49..<57]),
                       mac: Array(bytes[57..<89]))
    }

    /// Whether `request` was made with this session's secret (constant-time comparison).
    public static func verify(_ request: Request, resumeSecret: [UInt8]) -> Bool {
        let expected = mac(resumeSecret, [Array("montana-resume-i".utf8), request.sessionID, request.nonce, le(request.received)])
        return ConstantTime.equal(expected, request.mac)
    }

    /// The responder's acceptance of a verified request.
    public static func accept(_ request: Request, resumeSecret: [UInt8], received: UInt64, nonce: [UInt8]) -> [UInt8] {
        precondition(nonce.count == 32, "nonce_r is 32 bytes")
        let status = Status.ok.rawValue
        let tag = mac(resumeSecret, [Array("montana-resume-r".utf8), request.sessionID, request.nonce, nonce, le(received), [status]])
        return [status] + nonce + le(received) + tag
    }

    /// An unauthenticated refusal (it can only make the initiator start afresh).
    public static func refuse(_ status: Status) -> [UInt8] {
        [status.rawValue] + [UInt8](repeating: 0, count: answerSize - 1)
    }

    /// Reads the responder's answer to `request`: an acceptance must carry a valid MAC (a front
    /// cannot fake one); a refusal is taken as it is.
    public static func parseAnswer(_ bytes: [UInt8], to request: Request, resumeSecret: [UInt8]) throws(Failure) -> Answer {
        guard bytes.count == answerSize else { throw .wrongSize }
        guard let status = Status(rawValue: bytes[0]) else { throw .unknownStatus(bytes[0]) }
        guard status == .ok else { return Answer(status: status, nonce: [], received: 0) }
        let nonce = Array(bytes[1..<33]), received = readLE(bytes[33..<41])
        let expected = mac(resumeSecret, [Array("montana-resume-r".utf8), request.sessionID, request.nonce, nonce, le(received), [bytes[0]]])
        guard ConstantTime.equal(expected, Array(bytes[41..<73])) else { throw .badMAC }
        return Answer(status: .ok, nonce: nonce, received: received)
    }

    /// The resumed session's keys: `k_i2r ‖ k_r2i = HKDF(salt = resume_secret, ikm = nonce_i ‖
    /// nonce_r, info = "montana-resume-keys", 64)`.
    public static func keys(resumeSecret: [UInt8], initiatorNonce: [UInt8], responderNonce: [UInt8]) -> (i2r: [UInt8], r2i: [UInt8]) {
        let okm = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: initiatorNonce + responderNonce),
                                         salt: resumeSecret, info: Array("montana-resume-keys".utf8), outputByteCount: 64)
        let bytes = okm.withUnsafeBytes { Array($0) }
        return (Array(bytes[0..<32]), Array(bytes[32..<64]))
    }
}
