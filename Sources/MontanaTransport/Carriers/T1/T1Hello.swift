import MontanaCrypto

/// The T1 ClientHello as the client sends it and the front checks it (PROTOCOL.md 2.2): the pinned
/// Chrome shape (`ChromeClientHello`) with the session-id token (`T1Token`) sealed over it.
public enum T1Hello {
    public struct Client: @unchecked Sendable {
        public let record: [UInt8]
        public let random: [UInt8]
        public let shares: T1KeyShares
        /// K_auth: keys the front's tag on the cover's first encrypted record and the proof record.
        public let authKey: [UInt8]
    }

    /// Builds a Chrome-shaped hello whose session id is a token for the front with T1 key `frontPublic`.
    public static func make<G: RandomNumberGenerator>(serverName: String, frontPublic: [UInt8], psk: [UInt8], shortID: [UInt8],
                                                      unixSeconds: UInt32, using rng: inout G) throws -> Client {
        let shares = try T1KeyShares()
        var built = try ChromeClientHello.build(serverName: serverName, x25519Public: shares.x25519Public,
                                                hybridPublic: shares.hybridPublic, using: &rng)
        let (sid, auth) = try T1Token.seal(client: shares.x25519, frontPublic: frontPublic, psk: psk, random: built.random,
                                           unixSeconds: unixSeconds, shortID: shortID, aad: built.handshake)
        built.setSessionID(sid)
        return Client(record: built.record, random: built.random, shares: shares, authKey: auth)
    }

    public static func make(serverName: String, frontPublic: [UInt8], psk: [UInt8], shortID: [UInt8], unixSeconds: UInt32) throws -> Client {
        var g = SystemRandomNumberGenerator()
        return try make(serverName: serverName, frontPublic: frontPublic, psk: psk, shortID: shortID, unixSeconds: unixSeconds, using: &g)
    }

    /// Front side: the opened token of `hello`, or nil when it is not a T1 hello for `key`/`psk`
    /// (no TLS 1.3, no 32-byte session id, no X25519 share, AEAD fails). Time window, short id and
    /// replay are the caller's (admission) checks.
    public static func open(_ hello: ParsedClientHello, key: T1FrontKey, psk: [UInt8]) -> T1Token.Opened? {
        guard hello.supportedVersions.contains(0x0304), hello.sessionID.count == 32 else { return nil }
        guard let x = hello.keyShare(0x001d), x.count == 32 else { return nil }
        return T1Token.open(front: key.privateKey, clientShare: x, psk: psk, random: hello.random,
                            sessionID: hello.sessionID, aad: hello.handshakeWithZeroSessionID)
    }
}
