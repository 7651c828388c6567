import Foundation
import Logging
import MontanaCrypto
import MontanaDirectory
import MontanaSession
import MontanaTransport
import MontanaWire
import NIOCore

/// Attests other members (PROTOCOL.md 8.4). For each live member it dials a session straight to
/// it as this node's identity — Noise_PQ XX proves the member holds the record's identity key
/// (method bit 0). If this node has a GeoIP database and the member is an exit, the session
/// carries EgressAuth with the node identity as account, and one egress stream goes from the
/// member's exit back to this node's own transit port carrying an echo preface sealed to this
/// node's own key: the answer says which address the member's egress came from, and GeoIP
/// turns it into the country (method bit 1). The signed attestation enters the store and
/// spreads by gossip.
///
/// Pace: at most 2 attestations at once; a member is first attested 2 s after it appears here
/// (so gossip has carried our own record to it: it admits members' egress sessions only from
/// members it knows), re-attested after 6 h (attestations count for 24 h) or when its record's
/// country or address changed; failures are retried after 5, 10, 20, 40 and then every 60 s.
final class Attester: @unchecked Sendable {
    static let concurrency = 2
    static let refreshSeconds: UInt64 = 6 * 3600
    static let retrySeconds: UInt64 = 60
    static let firstRetrySeconds: UInt64 = 5
    /// Seconds a member must be known here before it is attested.
    static let settleSeconds: UInt64 = 2
    static let echoTimeout = TimeAmount.seconds(10)

    private unowned let directory: NodeDirectory
    // Loop-confined.
    private var running: Set<NodeID> = []
    private var done: [NodeID: (at: UInt64, country: String, group: String)] = [:]
    private var failedAt: [NodeID: (at: UInt64, failures: Int)] = [:]
    private var firstSeen: [NodeID: UInt64] = [:]
    private var stopped = false

    init(directory: NodeDirectory) {
        self.directory = directory
    }

    func start() {
        directory.loop.scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .seconds(2)) { [weak self] task in
            guard let self, !self.stopped else { task.cancel(); return }
            self.tick()
        }
    }

    func stop() { directory.loop.execute { self.stopped = true } }

    func tick() {
        guard !stopped else { return }
        let now = WallClock.now()
        let me = directory.identity.nodeID
        for member in directory.store.members(now: now) where member.nodeID != me {
            guard running.count < Self.concurrency else { return }
            guard !running.contains(member.nodeID) else { continue }
            let seen = firstSeen[member.nodeID] ?? now
            firstSeen[member.nodeID] = seen
            guard now >= seen, now - seen >= Self.settleSeconds else { continue }
            if let failed = failedAt[member.nodeID], now >= failed.at, now - failed.at < Self.retryDelay(failures: failed.failures) { continue }
            if let last = done[member.nodeID], now >= last.at, now - last.at < Self.refreshSeconds,
               last.country == member.country, last.group == member.addressGroup { continue }
            attest(member, now: now)
        }
        if done.count > 2 * DirectoryLimits().maxRecords { done = [:] }
        if firstSeen.count > 2 * DirectoryLimits().maxRecords { firstSeen = [:] }
    }

    /// 5, 10, 20, 40, then 60 s.
    static func retryDelay(failures: Int) -> UInt64 {
        guard failures > 0 else { return 0 }
        return min(retrySeconds, firstRetrySeconds << UInt64(min(failures - 1, 8)))
    }

    private func attest(_ member: DirectoryMember, now: UInt64) {
        guard let target = NodeDirectory.allianceMember(member)?.target else { return }
        running.insert(member.nodeID)
        let identity = directory.identity
        let geolocate = directory.geoip != nil && member.roles.contains(.exit)
        let subject = member.nodeID
        let msg3: @Sendable ([UInt8]) throws -> [UInt8] = { h in
            guard geolocate else { return SessionDialer.featuresPayload }
            let auth = try EgressAuthProof.build(account: identity, exit: subject, bindingHash: h, now: WallClock.now())
            return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0))),
                               TLV(type: PayloadTLV.egressAuth, value: auth.encode())])
        }
        let loop = directory.loop
        SessionDialer.connect(on: loop, to: target, identity: identity, alliance: directory.settings.alliance.uuidBytes,
                              localAddress: directory.localAddress, msg3: msg3)
            .flatMap { [self] session -> EventLoopFuture<(DialedSession, [UInt8]?)> in
                guard geolocate else { return loop.makeSucceededFuture((session, nil)) }
                return echo(through: session).map { (session, $0) }.flatMapErrorThrowing { error in
                    session.close()
                    throw error
                }
            }
            .whenComplete { [self] result in
                running.remove(subject)
                switch result {
                case .failure(let error):
                    failedAt[subject] = (WallClock.now(), (failedAt[subject]?.failures ?? 0) + 1)
                    directory.metrics.attestations(outcome: "failed")
                    directory.logger.info("could not attest a member", metadata: ["member": "\(subject.short)", "error": "\(error)"])
                case .success(let (session, observed)):
                    failedAt[subject] = nil
                    session.close()
                    finish(member, observed: observed)
                }
            }
    }

    private func finish(_ member: DirectoryMember, observed: [UInt8]?) {
        let now = WallClock.now()
        var method: Attestation.Method = [.sessionVerified]
        var country = member.country
        var egressIP: [UInt8]?
        if let observed, let geoip = directory.geoip {
            let compact = EchoProbe.compact(observed)
            egressIP = compact
            if let located = geoip.country(for: compact) {
                country = located
                method.insert(.egressGeolocated)
            }
        }
        let attestation = Attestation(subject: member.nodeID.bytes, countryCode: country,
                                      window: UInt32(truncatingIfNeeded: TimeWindow.window(unixSeconds: now)),
                                      attester: directory.identity.nodeID.bytes, method: method, observedEgressIP: egressIP)
        guard let signed = try? AttestationSigner.sign(attestation, with: directory.identity).encode() else { return }
        let geolocated = method.contains(.egressGeolocated), located = country
        done[member.nodeID] = (now, member.country, member.addressGroup)
        let store = directory.store
        let metrics = directory.metrics
        let logger = directory.logger
        directory.queue.async {
            let outcome = store.offerAttestation(signed, now: now)
            metrics.attestations(outcome: geolocated ? "geolocated" : "session_verified")
            if case .rejected(let why) = outcome {
                logger.warning("own attestation refused by the store", metadata: ["reason": "\(why.rawValue)"])
            } else if located != member.country {
                logger.notice("member's egress geolocates elsewhere than it claims", metadata: [
                    "member": "\(member.nodeID.short)", "claimed": "\(member.country)", "located": "\(located)"])
            }
        }
    }

    /// Opens an egress stream through `session`'s exit to our own transit port, sends an echo
    /// preface sealed to ourselves, and returns the address our listener saw (16 bytes).
    private func echo(through session: DialedSession) -> EventLoopFuture<[UInt8]> {
        let loop = directory.loop
        let own = RelayTarget(nodeID: directory.identity.nodeID, kemPublicKey: directory.kem.publicKey,
                              host: directory.configuration.listen.publicEndpoint?.host ?? "",
                              port: directory.configuration.listen.publicEndpoint?.port ?? 0)
        let promise = loop.makePromise(of: [UInt8].self)
        guard let port = UInt16(exactly: own.port), port != 0,
              let stream = session.mux.openStream(protocol: EgressMessage.protocolID, negotiated: { _ in }) else {
            return loop.makeFailedFuture(CircuitError.carrierClosed)
        }
        let probe: (bytes: [UInt8], keys: Preface.Keys)
        let openBytes: [UInt8]
        do {
            probe = try EchoProbe.preface(to: own, alliance: directory.settings.alliance.uuidBytes)
            // The stream id inside EgressOpen is the yamux stream's.
            openBytes = try EgressMessage.open(EgressOpen(streamID: stream.id, transport: .tcp,
                                                          address: Self.literal(own.host) ?? .host(own.host), port: port)).encode()
        } catch {
            stream.reset()
            return loop.makeFailedFuture(error)
        }
        var completed = false
        func complete(_ result: Result<[UInt8], any Error>) {
            guard !completed else { return }
            completed = true
            promise.completeWith(result)
        }
        let framed = FramedStream(stream: stream, maxMessageSize: LengthPrefixedDecoder.defaultMaxMessageSize)
        var answer: [UInt8] = []
        let timer = loop.assumeIsolated().scheduleTask(in: Self.echoTimeout) { complete(.failure(CircuitError.timedOut)) }
        framed.onMessage = { bytes in
            guard let message = try? EgressMessage.decode(bytes) else { complete(.failure(CircuitError.badAnswer)); return }
            switch message {
            case .openAck(_, let status):
                guard status == .open else { complete(.failure(AttestationError.egressRefused("\(status)"))); return }
                if let data = try? EgressMessage.data(streamID: stream.id, payload: probe.bytes).encode() { framed.send(data) }
            case .data(_, let payload):
                answer += payload
                if answer.count >= Preface.responseSize {
                    if let seen = EchoProbe.observedAddress(answer: Array(answer.prefix(Preface.responseSize)), keys: probe.keys) {
                        complete(.success(seen))
                    } else {
                        complete(.failure(CircuitError.badAnswer))
                    }
                }
            case .close:
                complete(.failure(CircuitError.carrierClosed))
            default:
                break
            }
        }
        framed.onEnd = { _ in complete(.failure(CircuitError.carrierClosed)) }
        framed.send(openBytes)
        framed.start()
        return promise.futureResult.always { _ in
            timer.cancel()
            framed.reset()
        }
    }

    static func literal(_ host: String) -> EgressAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return .ipv4(withUnsafeBytes(of: v4) { Array($0) }) }
        var v6 = in6_addr()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if inet_pton(AF_INET6, bare, &v6) == 1 { return .ipv6(withUnsafeBytes(of: v6) { Array($0) }) }
        return nil
    }
}

enum AttestationError: Error, CustomStringConvertible {
    case egressRefused(String)
    var description: String {
        switch self {
        case .egressRefused(let s): return "the member's exit refused the echo stream (\(s))"
        }
    }
}
