import MontanaCrypto
import MontanaWire
import NIOCore

/// A member another node can be dialled at: its preface key and transit endpoint.
public struct RelayTarget: Sendable {
    public let nodeID: NodeID
    public let kemPublicKey: [UInt8]
    public let host: String
    public let port: Int

    public init(nodeID: NodeID, kemPublicKey: [UInt8], host: String, port: Int) {
        self.nodeID = nodeID
        self.kemPublicKey = kemPublicKey
        self.host = host
        self.port = port
    }
}

/// What a hop does with an accepted preface.
public enum RouteDecision: Sendable {
    /// The hop is the target: answer OK and run the session responder; `install` adds the
    /// layers above the session (yamux and services) to the pipeline.
    case terminate(SessionRole, install: @Sendable (any Channel) throws -> Void)
    /// Relay to another member and splice.
    case relay(RelayTarget)
    /// Answer with this status and close.
    case refuse(RelayStatus)
    /// An echo preface addressed to this hop (`CircuitPurpose.echo`): answer OK with the
    /// connection's source address and close.
    case echo
    /// A circuit with purpose `resume` that ends here: answer OK and read the resume request
    /// (PROTOCOL.md 5.3) for one of this node's resumable sessions.
    case resume
}

/// Decides per preface; implemented by the node from its configuration and directory.
public protocol CircuitRouter: Sendable {
    func route(_ message: Preface.Message) -> RouteDecision
}

/// Counters the transport reports; the node maps them to metrics.
public protocol TransportObserver: Sendable {
    func prefaceRejected(reason: String)
    func circuitOpened(relayed: Bool)
    func circuitClosed(relayed: Bool)
    func relayedBytes(_ count: Int)
    func sessionFailed(reason: String)
    /// A resume request was authenticated and its session takes the new carrier.
    func sessionResumed()
}

extension TransportObserver {
    public func sessionResumed() {}
}

public struct NoTransportObserver: TransportObserver {
    public init() {}
    public func prefaceRejected(reason: String) {}
    public func circuitOpened(relayed: Bool) {}
    public func circuitClosed(relayed: Bool) {}
    public func relayedBytes(_ count: Int) {}
    public func sessionFailed(reason: String) {}
}

/// Why a circuit could not be opened, as the initiator sees it.
public enum CircuitError: Error, Equatable, Sendable, CustomStringConvertible {
    case refused(RelayStatus)
    case badAnswer
    case timedOut
    case carrierClosed

    public var description: String {
        switch self {
        case .refused(let s): return "the hop refused the circuit (\(s))"
        case .badAnswer: return "the hop's answer did not open"
        case .timedOut: return "the hop did not answer in time"
        case .carrierClosed: return "the connection closed before the hop answered"
        }
    }
}
