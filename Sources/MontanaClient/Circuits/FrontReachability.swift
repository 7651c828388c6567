import MontanaCrypto
import MontanaTransport
import MontanaWire
import NIOCore

/// What this client has seen of each front from where it is now (PROTOCOL.md section 9, the
/// client-local observations): every carrier attempt's outcome, the time the front took to answer
/// the preface, and the last error. It ranks fronts for new circuits — recently reachable first
/// (fastest first), never tried next, failing last — and says which fronts were tried when none
/// answers. Confined to the client's event loop.
///
/// Bounded: at most `maxFronts` (256, the spec's observations per vantage) fronts are remembered;
/// the one attempted longest ago goes first. A change of vantage (the fronts see another /16)
/// forgets everything: what was blocked on one network says nothing about the next.
public struct FrontReachability: Sendable {
    public static let maxFronts = 256
    /// Carrier profile names (the ladder of PROTOCOL.md section 2) as observations show them.
    public static let profileT0 = "T0"
    public static func profileName(_ p: CarrierProfile) -> String { p.name.uppercased() }

    public enum State: String, Sendable { case reachable, unreachable, unknown }

    /// Successes and failures in one reporting window.
    public struct WindowOutcomes: Sendable, Equatable {
        public var window: UInt64
        public var successes: UInt16 = 0
        public var failures: UInt16 = 0

        public init(window: UInt64, successes: UInt16 = 0, failures: UInt16 = 0) {
            self.window = window
            self.successes = successes
            self.failures = failures
        }
    }

    /// Windows of outcomes kept per front: an advert lives 7 windows at a front
    /// (`ReachabilityAdvert.maxAgeWindows`), so older outcomes would never be reported.
    public static let reportWindows = Int(ReachabilityAdvert.maxAgeWindows)

    public struct Observation: Sendable {
        public let node: NodeID
        public var label: String
        public var host: String
        public var profile = FrontReachability.profileT0
        public var successes = 0
        public var failures = 0
        /// Time from the carrier dial to the front's preface answer, last success (ms).
        public var rttMilliseconds: UInt64?
        public var lastError: String?
        /// Whether the last attempt reached the front.
        public var lastReached = false
        /// Event-loop uptime (ns) of the last attempt: never on disk, never a wall-clock time.
        public var lastAttempt: UInt64 = 0
        /// Outcomes by reporting window (`TimeWindow`, 60 s) over the last `reportWindows`
        /// windows, oldest first: what the client reports to the map (memory only, never on disk;
        /// observations restored from the cache have none, so old runs are never reported).
        public var recent: [WindowOutcomes] = []
        /// The same per carrier profile (the ladder's attempts): one advert per profile.
        public var recentByProfile: [UInt8: [WindowOutcomes]] = [:]
        /// The profile that reached this front last, and each profile's last error.
        public var workingProfile: CarrierProfile?
        public var profileErrors: [CarrierProfile: String] = [:]

        public init(node: NodeID, label: String, host: String) {
            self.node = node
            self.label = label
            self.host = host
        }

        /// Adds one outcome to `window`'s counts (a clock stepping back counts in the newest
        /// window kept) and drops windows older than `reportWindows`.
        mutating func countOutcome(reached: Bool, window: UInt64, profile: CarrierProfile = .t0) {
            Self.count(&recent, reached: reached, window: window)
            Self.count(&recentByProfile[profile.rawValue, default: []], reached: reached, window: window)
        }

        static func count(_ recent: inout [WindowOutcomes], reached: Bool, window: UInt64) {
            let at = max(window, recent.last?.window ?? 0)
            if recent.last?.window != at { recent.append(WindowOutcomes(window: at)) }
            let i = recent.count - 1
            if reached {
                recent[i].successes = recent[i].successes < .max ? recent[i].successes + 1 : .max
            } else {
                recent[i].failures = recent[i].failures < .max ? recent[i].failures + 1 : .max
            }
            let oldest = at >= UInt64(FrontReachability.reportWindows) ? at - UInt64(FrontReachability.reportWindows) : 0
            recent.removeAll { $0.window <= oldest && $0.window != at }
        }

        public var state: State {
            if successes == 0 && failures == 0 { return .unknown }
            return lastReached ? .reachable : .unreachable
        }
    }

    private(set) var observations: [NodeID: Observation] = [:]
    /// The /16 (IPv4) or /32 (IPv6) of this client's address as fronts observe it (msg2's
    /// observed-address TLV), "" until a front told us.
    public private(set) var sourceGroup = ""

    public init() {}

    public var all: [Observation] { observations.values.sorted { $0.label < $1.label } }

    public func observation(_ node: NodeID) -> Observation? { observations[node] }

    /// Observations saved for this source group (a client's cache), for fronts not observed since
    /// start; at most `maxFronts`. Their attempt times are unknown (0: "long ago").
    public mutating func restore(_ saved: [Observation], sourceGroup group: String) {
        guard group == sourceGroup else { return }
        for var o in saved.prefix(Self.maxFronts) where observations[o.node] == nil && observations.count < Self.maxFronts {
            o.lastAttempt = 0
            observations[o.node] = o
        }
    }

    /// A front answered (`rtt` from dial to answer) or could not be reached (`error`).
    /// `window` is the reporting window of the attempt (default: now's).
    /// `profile` is the carrier the attempt used; `endpoint` where it dialled (default the T0 one).
    /// `steers`: the attempt went through the ladder, so its profile's success or error moves where
    /// the ladder starts; a dial that bypasses it (the directory session's plain T0) only counts.
    public mutating func record(_ front: AllianceMember, reached: Bool, rttMilliseconds: UInt64? = nil, error: String? = nil, now: UInt64,
                                window: UInt64 = TimeWindow.window(unixSeconds: WallClock.now()),
                                profile: CarrierProfile = .t0, endpoint: CarrierEndpoint? = nil, steers: Bool = true) {
        let host = endpoint.map { "\($0.host):\($0.port)" } ?? "\(front.host):\(front.port)"
        var o = observations[front.nodeID] ?? Observation(node: front.nodeID, label: front.label, host: host)
        o.countOutcome(reached: reached, window: window, profile: profile)
        o.label = front.label
        o.host = host
        o.profile = Self.profileName(profile)
        o.lastAttempt = now
        o.lastReached = reached
        if !steers {
            // Counted below; the ladder's preference is left alone.
        } else if reached {
            o.workingProfile = profile
            o.profileErrors[profile] = nil
            lastWorkingProfile = profile
        } else if let error {
            o.profileErrors[profile] = String(error.prefix(200))
            if o.workingProfile == profile { o.workingProfile = nil }
        }
        if reached {
            o.successes = o.successes < Int.max ? o.successes + 1 : o.successes
            if let rttMilliseconds { o.rttMilliseconds = rttMilliseconds }
            o.lastError = nil
        } else {
            o.failures = o.failures < Int.max ? o.failures + 1 : o.failures
            o.lastError = error.map { String($0.prefix(200)) }
        }
        observations[front.nodeID] = o
        if observations.count > Self.maxFronts,
           let oldest = observations.min(by: { $0.value.lastAttempt < $1.value.lastAttempt })?.key {
            observations[oldest] = nil
        }
    }

    /// The carrier profile that reached a front last from this vantage (the ladder starts there).
    public private(set) var lastWorkingProfile: CarrierProfile?

    /// The address fronts reported (16 bytes, memory only): the vantage's GeoIP key.
    public private(set) var observedAddress: [UInt8]?
    /// The alliance's map for this vantage, as a front served it: actionable entries only.
    public var map: [NodeID: MapState] = [:]

    public enum MapState: String, Sendable {
        case reachable, unreachable
    }

    /// The source group fronts reported; a different one than before means another network.
    public mutating func observedSourceGroup(_ group: String, address: [UInt8]? = nil) {
        if let address { observedAddress = address }
        guard !group.isEmpty, group != sourceGroup else { return }
        if !sourceGroup.isEmpty {
            observations = [:]
            map = [:]
            lastWorkingProfile = nil
        }
        sourceGroup = group
    }

    /// Best first: reachable (lowest RTT first), unknown (in the given order), unreachable
    /// (fewest failures, then the one tried longest ago — it may have come back).
    /// Own observations first; a front this client has not tried from here goes by the map:
    /// actionable reachable, then unknown, then actionable unreachable (PROTOCOL.md 9).
    public func ranked(_ fronts: [AllianceMember]) -> [AllianceMember] {
        func key(_ m: AllianceMember, _ index: Int) -> (Int, UInt64, Int) {
            let byMap: Int
            switch map[m.nodeID] {
            case .reachable?: byMap = 1
            case .unreachable?: byMap = 3
            case nil: byMap = 2
            }
            guard let o = observations[m.nodeID] else { return (byMap, 0, index) }
            switch o.state {
            case .reachable: return (0, o.rttMilliseconds ?? .max / 2, index)
            case .unknown: return (byMap, 0, index)
            case .unreachable: return (4, UInt64(clamping: o.failures), index)
            }
        }
        return fronts.enumerated().map { (key($0.element, $0.offset), $0.element) }
            .sorted { $0.0 < $1.0 }.map(\.1)
    }
}

/// The observed-address TLV (0x03) of a msg2 payload: `16-byte IPv6 or v4-mapped ‖ u16 LE port`.
public enum ObservedAddress {
    /// The source group of the address in `payload` (msg2's TLVs): "a.b.0.0/16" for IPv4,
    /// "xxxx:xxxx::/32" for IPv6; nil when absent or malformed.
    public static func sourceGroup(inPayload payload: [UInt8]) -> String? {
        guard let tlvs = try? TLV.decode(payload),
              let value = tlvs.first(where: { $0.type == PayloadTLV.observedAddress })?.value, value.count == 18 else { return nil }
        let ip = Array(value[0..<16])
        if ip[0..<10].allSatisfy({ $0 == 0 }) && ip[10] == 0xff && ip[11] == 0xff {
            return "\(ip[12]).\(ip[13]).0.0/16"
        }
        return "\(Hex.encode(Array(ip[0..<2]))):\(Hex.encode(Array(ip[2..<4])))::/32"
    }

    /// The 16-byte address itself (IPv6 or v4-mapped).
    public static func address(inPayload payload: [UInt8]) -> [UInt8]? {
        guard let tlvs = try? TLV.decode(payload),
              let value = tlvs.first(where: { $0.type == PayloadTLV.observedAddress })?.value, value.count == 18 else { return nil }
        return Array(value[0..<16])
    }
}
