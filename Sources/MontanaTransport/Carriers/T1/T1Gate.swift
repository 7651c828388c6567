import MontanaCrypto

/// The T1 front's decision on a parsed ClientHello (PROTOCOL.md 2.2, T1-RESEARCH.md 4.5 step 3):
/// a connection is a token holder only if the hello offers TLS 1.3, names a configured cover SNI,
/// carries an X25519 share, its session-id token opens under the front's key and PSK, its time is
/// within ±90 s, its short id is configured (constant-time compare) and its client random was not
/// seen in the last 240 s. Anything else is `.cover`: the connection stays a splice to the cover.
///
/// The replay memory is the preface gate's (`PrefaceGate`: hard bound `capacity`, default 65,536
/// randoms ≈ 10 MiB, per-owner share so one source network cannot fill it; fail closed when full:
/// a hello that finds no room goes to the cover). Not thread-safe: one gate per event loop, or
/// guard it with a lock.
public struct T1Gate: Sendable {
    public static let maxSkew: UInt64 = 90

    public enum Reason: String, Sendable, Equatable {
        case notTLS13 = "not_tls13", serverName = "sni", noToken = "no_token", stale = "stale"
        case unknownShortID = "short_id", replay = "replay", replayFull = "replay_full"
    }

    public enum Verdict: Sendable, Equatable {
        case token(T1Token.Opened)
        case cover(Reason)
    }

    public let key: T1FrontKey
    public let psk: [UInt8]
    public let shortIDs: [[UInt8]]          // each padded to 8 bytes
    public let serverNames: Set<String>     // lowercased; empty = any SNI
    private var replay: PrefaceGate

    public init(key: T1FrontKey, psk: [UInt8], shortIDs: [[UInt8]], serverNames: [String],
                replayCapacity: Int = PrefaceGate.defaultCapacity) throws {
        self.key = key
        self.psk = psk
        self.shortIDs = try shortIDs.map(T1Token.paddedShortID)
        self.serverNames = Set(serverNames.map { $0.lowercased() })
        replay = PrefaceGate(capacity: replayCapacity)
    }

    public var replayCount: Int { replay.count }

    public mutating func check(_ hello: ParsedClientHello, now: UInt64, owner: ReplayOwner? = nil, ownerLimit: Int? = nil) -> Verdict {
        guard hello.supportedVersions.contains(0x0304) else { return .cover(.notTLS13) }
        if !serverNames.isEmpty {
            guard let sni = hello.serverName?.lowercased(), serverNames.contains(sni) else { return .cover(.serverName) }
        }
        guard let opened = T1Hello.open(hello, key: key, psk: psk) else { return .cover(.noToken) }
        let t = UInt64(opened.unixSeconds)
        guard (t > now ? t - now : now - t) <= Self.maxSkew else { return .cover(.stale) }
        var known = false
        for id in shortIDs where ConstantTime.equal(id, opened.shortID) { known = true }
        guard known else { return .cover(.unknownShortID) }
        do {
            try replay.remember(ReplayDigest(kemCiphertext: hello.random), now: now, owner: owner,
                                ownerLimit: ownerLimit ?? replay.capacity)
        } catch .replay {
            return .cover(.replay)
        } catch {
            return .cover(.replayFull)
        }
        return .token(opened)
    }
}
