import MontanaCrypto
import MontanaTransport
import NIOCore

/// One end-to-end session from this client to an exit, through a front. Every app connection
/// to that exit is one stream on it (a new connection costs a stream, not a handshake). An egress
/// session lives in a `SessionChannel`: when its carrier breaks it is resumed through another
/// front (`front` changes, the exit never does) and its streams carry on.
/// Confined to the client's single event loop (every access happens on it).
public final class ExitSession: @unchecked Sendable {
    public let exit: AllianceMember
    /// The front carrying the session now.
    public internal(set) var front: AllianceMember
    /// The carrier profile to that front (it may change when the session resumes).
    public internal(set) var carrier: CarrierProfile = .t0
    public let mux: MuxHandler
    public let channel: any Channel
    public let openedAt = WallClock.now()
    public internal(set) var bytesUp = 0
    public internal(set) var bytesDown = 0
    public internal(set) var streamsOpened = 0
    public internal(set) var activeStreams = 0
    /// Streams opened on this session at most; connections beyond go to another session to the
    /// same exit (`CircuitManager.streamsPerSession`).
    var streamLimit = CircuitManager.streamsPerSession
    /// Called on the loop whenever one of its streams ends (a waiting connection may take it).
    var onStreamFinished: (() -> Void)?
    /// An overflow session closed on purpose because it sat idle: its close is not a loss.
    var retired = false

    func streamFinished() {
        activeStreams -= 1
        onStreamFinished?()
    }

    init(exit: AllianceMember, front: AllianceMember, mux: MuxHandler, channel: any Channel) {
        self.exit = exit
        self.front = front
        self.mux = mux
        self.channel = channel
    }

    public var isActive: Bool { channel.isActive }
    /// The resumable session channel (nil for a probe's plain carrier).
    public var session: SessionChannel? { channel as? SessionChannel }
    /// A resumption is under way (the carrier was lost).
    var resuming = false
    /// Resuming failed and the session was closed on purpose: its close is not a new loss.
    var gaveUp = false
    /// The session ended because its carrier was lost (silence, or no front could resume it),
    /// not because the exit closed it: a connection waiting on it deserves a new session.
    var lostItsCarrier: Bool { gaveUp || mux.closedForSilence }
    /// Set when no front answered any resume attempt: "country CC … is unreachable from this
    /// network" — a new session would try the same fronts, so waiting connections get this now.
    var unreachableFromHere: String?
    /// Carrier losses this session survived, and the stall of the last one (ms).
    public internal(set) var resumptions = 0
    public internal(set) var lastStallMilliseconds: UInt64?
}

/// A snapshot for status displays (demo table, /status): node-level facts only.
public struct CircuitStatus: Sendable, Codable {
    public let exit: String
    public let exitCountry: String
    public let front: String
    public let relayed: Bool
    public let streamsActive: Int
    public let streamsOpened: Int
    public let bytesUp: Int
    public let bytesDown: Int
    public let ageSeconds: UInt64
    /// The warm reserve front (nil when there is none).
    public var reserve: String?
    /// Carrier losses the session survived (resumed through another front), and the last stall.
    public var resumptions: Int?
    public var lastStallMilliseconds: UInt64?
    /// The carrier profile of the front's connection ("t0", "t3").
    public var carrier: String?

    enum CodingKeys: String, CodingKey {
        case exit, front, relayed, reserve, resumptions, carrier
        case lastStallMilliseconds = "last_stall_ms"
        case exitCountry = "exit_country"
        case streamsActive = "streams_active"
        case streamsOpened = "streams_opened"
        case bytesUp = "bytes_up"
        case bytesDown = "bytes_down"
        case ageSeconds = "age_seconds"
    }
}
