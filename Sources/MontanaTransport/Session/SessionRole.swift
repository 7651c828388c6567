import MontanaCrypto
import MontanaWire

/// Which end of Noise_PQ XX a `SessionCryptoHandler` plays, and what it needs for it.
public enum SessionRole: Sendable {
    /// `payload` builds msg3's payload from `h_pre3` (an exit session puts EgressAuth there).
    case initiator(identity: IdentityKey, responder: NodeID, payload: @Sendable ([UInt8]) throws -> [UInt8])
    /// `payload` is msg2's payload; `admit` checks msg3 (identity, payload, `h_pre3`) and returns
    /// what the session learned, or throws to close silently.
    case responder(identity: IdentityKey, payload: [UInt8], admit: @Sendable (NoisePeer, [UInt8]) throws -> SessionAdmission)
}

extension SessionRole {
    /// A responder's role with the observed-address TLV (0x03, `value` = 16-byte address ‖ u16 LE
    /// port) appended to msg2's payload: sent only on sessions that reached this node directly,
    /// so a client learns its vantage (PROTOCOL.md section 4). An initiator's role is unchanged.
    public func addingObservedAddress(_ value: [UInt8]) -> SessionRole {
        guard case .responder(let identity, let payload, let admit) = self else { return self }
        return .responder(identity: identity, payload: payload + TLV.encode([TLV(type: PayloadTLV.observedAddress, value: value)]), admit: admit)
    }
}

/// What a responder learned about its initiator in msg3.
public struct SessionAdmission: Sendable {
    /// The account proven by EgressAuth, when the session may use egress.
    public var account: AdmittedAccount?
    /// The initiator proved the identity of a member of this node's alliance (an attesting
    /// member): its egress may reach members' transit endpoints.
    public var member: Bool

    public init(account: AdmittedAccount? = nil, member: Bool = false) {
        self.account = account
        self.member = member
    }
}

/// Fired through the pipeline when the handshake completes.
public struct SessionEstablished: Sendable {
    public let peer: NoisePeer
    public let sessionID: [UInt8]
    public let admission: SessionAdmission

    public init(peer: NoisePeer, sessionID: [UInt8], admission: SessionAdmission) {
        self.peer = peer
        self.sessionID = sessionID
        self.admission = admission
    }
}

/// Why a session ended without being established, or was aborted.
public enum SessionError: Error, Equatable, Sendable, CustomStringConvertible {
    case handshake(String)
    case frame(String)
    case protocolViolation(String)
    case closedByPeer(UInt8)
    case admissionRefused(String)

    public var reason: String {
        switch self {
        case .handshake: return "handshake"
        case .frame: return "frame"
        case .protocolViolation: return "protocol"
        case .closedByPeer: return "closed"
        case .admissionRefused: return "admission"
        }
    }

    public var description: String {
        switch self {
        case .handshake(let s): return "handshake failed: \(s)"
        case .frame(let s): return "transport frame error: \(s)"
        case .protocolViolation(let s): return "session protocol violation: \(s)"
        case .closedByPeer(let r): return "peer closed the session (reason \(r))"
        case .admissionRefused(let s): return "refused: \(s)"
        }
    }
}
