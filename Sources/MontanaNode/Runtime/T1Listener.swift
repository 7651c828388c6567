import Foundation
import Logging
import Metrics
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A node's T1 carrier (PROTOCOL.md 2.2): every connection is relayed to the real cover site from
/// its first byte; only a client whose ClientHello carries a valid, fresh, unreplayed token for
/// this front's key and whose proof record opens is switched to T1 frames and handed to
/// `PrefaceAcceptHandler`. Everything else — browsers, scanners, probers replaying a captured
/// hello — stays a splice to the cover (the kernel relay past 256 KiB) for its whole life.
///
/// Replay memory: `T1Gate` (65,536 client randoms for 240 s, per source network (/24, /48) at
/// most one eighth; fail closed to the cover when full).
final class T1Listener: Sendable {
    let settings: TLSCarrierSettings
    let logger: Logger
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    private let outcomes = NIOLockedValueBox<[String: Int]>([:])
    private let published = NIOLockedValueBox<Endpoint?>(nil)
    private let mode = NIOLockedValueBox<KeyMode>(.own)
    private let accepted = Counter(label: "montana_carrier_connections_total", dimensions: [("profile", "t1")])

    init(settings: TLSCarrierSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Outcome labels are a fixed set (switched, the gate's reasons, the session's splice reasons).
    private func count(_ outcome: String) {
        outcomes.withLockedValue { $0[outcome, default: 0] += 1 }
        Counter(label: "montana_t1_connections_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// The key mode and what follows from it: with the alliance's universal key (`universal` is the
    /// node's alliance's `universal_t1` and its public key equals ours), the names and short ids
    /// default to the alliance's and the record publishes no key of ours (clients take it from
    /// their subscription); with an own key, the record carries `own_t1` and the endpoint `pbk`.
    static func parameters(settings: TLSCarrierSettings, publicKey: [UInt8], universal: UniversalT1?, defaultShortID: [UInt8])
        throws(ConfigurationError) -> (mode: KeyMode, names: [String], shortIDs: [[UInt8]]) {
        let isUniversal = universal.map { ConstantTime.equal($0.x25519PublicKeyBytes, publicKey) } ?? false
        let names = settings.serverNames.isEmpty && isUniversal ? [universal!.serverName] : settings.serverNames
        guard !names.isEmpty else {
            throw .invalidValue(file: settings.configKey, key: "sni", problem: "is missing: list the cover site's names, e.g. [\"www.example.org\"] "
                                + "(only a front with the alliance's universal key may leave it out)")
        }
        var ids = settings.shortIDs
        if ids.isEmpty { ids = isUniversal ? universal!.shortIDBytes : [defaultShortID] }
        guard !ids.isEmpty else { throw .invalidValue(file: settings.configKey, key: "short_ids", problem: "is empty and the alliance lists none") }
        return (isUniversal ? .universal : .own, names, ids)
    }

    func start(group: any EventLoopGroup, defaultHost: String, psk: [UInt8], defaultShortID: [UInt8], universal: UniversalT1?,
               published carriers: PublishedCarriers, splicer: KernelSplicer?,
               accept: @escaping @Sendable () -> PrefaceAcceptHandler) async throws -> Endpoint {
        let settings = self.settings
        let key: T1FrontKey
        do {
            key = try T1FrontKey(rawPrivate: try KeyFile.loadT1(settings.keyPath).privateKey)
        } catch {
            throw ConfigurationError.invalidValue(file: settings.configKey, key: "key", problem: "\(error)")
        }
        let coverAddress: SocketAddress
        do {
            coverAddress = try SocketAddress.makeAddressResolvingHost(settings.cover.host, port: settings.cover.port)
        } catch {
            throw ConfigurationError.invalidValue(file: settings.configKey, key: "cover", problem: "cannot resolve \(settings.cover): \(error)")
        }
        let (keyMode, serverNames, shortIDs) = try Self.parameters(settings: settings, publicKey: key.publicKey, universal: universal,
                                                                   defaultShortID: defaultShortID)
        mode.withLockedValue { $0 = keyMode }
        let gate = NIOLockedValueBox(try T1Gate(key: key, psk: psk, shortIDs: shortIDs, serverNames: serverNames))
        let ownerLimit = PrefaceGate.defaultCapacity / 8
        let accepted = self.accepted
        let server = try await ServerBootstrap.carrierListener(group: group)
            .childChannelInitializer { [self] channel in
                accepted.increment()
                let owner = channel.remoteAddress.flatMap(SourceAddress.init).map { $0.prefix(bits: $0.isIPv4 ? 24 : 48).replayOwner }
                let verify: T1FrontSession.Verifier = { [self] hello in
                    switch gate.withLockedValue({ $0.check(hello, now: WallClock.now(), owner: owner, ownerLimit: ownerLimit) }) {
                    case .token(let opened): return opened
                    case .cover(let reason):
                        count(reason.rawValue)
                        return nil
                    }
                }
                let kernel: (() -> KernelHandoff?)? = splicer.map { splicer in
                    { KernelHandoff(splicer: splicer, handedOff: {}, onBytes: { _ in }, onEnd: {}) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(T1FrontHandler(
                        cover: coverAddress, verify: verify, kernel: kernel,
                        onOutcome: { [self] outcome in if outcome != "no_token" { count(outcome) } },
                        onSwitch: { channel in try channel.pipeline.syncOperations.addHandler(accept()) }))
                }
            }
            .bind(host: settings.listen.host, port: settings.listen.port)
            .get()
        listener.withLockedValue { $0 = server }
        let boundPort = server.localAddress?.port ?? settings.listen.port
        var params = ["sid": Hex.encode(shortIDs[0]), "sni": serverNames[0]]
        if keyMode == .own {
            params["pbk"] = Hex.encode(key.publicKey)
            carriers.ownT1 = T1Params(x25519PublicKey: key.publicKey, shortIDs: shortIDs, serverName: serverNames[0], cover: "")
        } else {
            params["mode"] = "universal"
        }
        let port = settings.publicPort ?? boundPort
        guard let port16 = UInt16(exactly: port) else { throw ConfigurationError.invalidValue(file: settings.configKey, key: "public_port", problem: "\(port) is not a port") }
        let endpoint = Endpoint(profile: CarrierProfile.t1.rawValue, host: defaultHost, port: port16, params: CarrierEndpoint.encodeParams(params))
        published.withLockedValue { $0 = endpoint }
        logger.info("T1 (TLS relay to the cover) carrier up", metadata: ["listen": "\(settings.listen.host):\(boundPort)", "cover": "\(settings.cover)",
                                                                       "key": "\(keyMode == .own ? "own" : "universal")"])
        return endpoint
    }

    var boundPort: Int? { listener.withLockedValue { $0 }?.localAddress?.port }

    func stop() async {
        if let server = listener.withLockedValue({ $0 }) { try? await server.close() }
    }

    /// `/status` → `carriers.t1`: connections by outcome (`switched` = Montana clients; every
    /// other key is why a connection stayed with the cover).
    func status() -> [String: any Sendable] {
        let o = outcomes.withLockedValue { $0 }
        var doc: [String: any Sendable] = ["listen": settings.listen.description, "cover": settings.cover.description,
                                           "state": boundPort != nil ? "up" : "down", "switched": o["switched"] ?? 0,
                                           "to_cover": o.filter { $0.key != "switched" }.values.reduce(0, +),
                                           "outcomes": o, "key_mode": mode.withLockedValue { $0 } == .own ? "own" : "universal"]
        if let e = published.withLockedValue({ $0 }) { doc["endpoint"] = "\(e.host):\(e.port)" }
        return doc
    }
}
