import Crypto
import Foundation

/// SafeCookie authentication of the Tor Extended ORPort (ext-orport-spec, section 4.2.1), which a
/// node's T3 listener uses so that only the obfs4proxy it started (the one that can read the
/// cookie file) may hand it connections and tell it the client's address.
public enum ExtORPortAuth {
    public static let cookieHeader = Array("! Extended ORPort Auth Cookie !\n".utf8)
    public static let cookieSize = 32
    public static let nonceSize = 32
    public static let hashSize = 32

    /// `HMAC-SHA256(cookie, "ExtORPort authentication server-to-client hash" ‖ client nonce ‖ server nonce)`.
    public static func serverHash(cookie: [UInt8], clientNonce: [UInt8], serverNonce: [UInt8]) -> [UInt8] {
        mac(cookie, "ExtORPort authentication server-to-client hash", clientNonce, serverNonce)
    }

    /// `HMAC-SHA256(cookie, "ExtORPort authentication client-to-server hash" ‖ client nonce ‖ server nonce)`.
    public static func clientHash(cookie: [UInt8], clientNonce: [UInt8], serverNonce: [UInt8]) -> [UInt8] {
        mac(cookie, "ExtORPort authentication client-to-server hash", clientNonce, serverNonce)
    }

    private static func mac(_ cookie: [UInt8], _ label: String, _ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        var h = HMAC<SHA256>(key: SymmetricKey(data: cookie))
        h.update(data: Array(label.utf8))
        h.update(data: a)
        h.update(data: b)
        return Array(h.finalize())
    }

    /// Compares in time independent of where the bytes differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    public static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }

    /// Writes a fresh cookie file (header ‖ 32 random bytes, mode 0600) and returns the cookie.
    public static func writeCookie(path: String) throws -> [UInt8] {
        let cookie = randomBytes(cookieSize)
        let url = URL(fileURLWithPath: path)
        try? FileManager.default.removeItem(at: url)
        guard FileManager.default.createFile(atPath: path, contents: Data(cookieHeader + cookie), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        return cookie
    }
}
