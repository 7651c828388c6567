import MontanaClient
import MontanaCrypto
import MontanaDirectory
import MontanaTransport
import MontanaExit
import MontanaSession
import MontanaWire
import NIOCore

/// One entry point per decoder that reads network input. Each must return normally on any
/// input: a crash, a trap or unbounded allocation is a bug. Shared by the libFuzzer binary
/// (`montana-fuzz`) and the unit tests that replay random inputs.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case preface
    case prefaceBlock = "preface-block"
    case hopMessage = "hop-message"
    case stopMessage = "stop-message"
    case handshakeMessage1 = "handshake-msg1"
    case handshakeMessage2 = "handshake-msg2"
    case handshakeMessage3 = "handshake-msg3"
    case transportFrames = "transport-frames"
    case egressMessage = "egress-message"
    case egressAuth = "egress-auth"
    case directoryEntry = "directory-entry"
    case signedRecord = "signed-record"
    case attestation
    case accountPass = "account-pass"
    case advert
    case tlv
    case yamux
    case multistream
    case lengthPrefixed = "length-prefixed"
    case socks5
    case httpProxy = "http-proxy"
    case exitPolicyEntry = "exit-policy-entry"
    /// A real session past authentication, fed records, yamux, multistream and egress input.
    case session
    case syncFrame = "sync-frame"
    case endorsement
    case recordValidation = "record-validation"
    case memberLink = "member-link"
    case subscription
    case allianceFile = "alliance-file"
    case accountStatus = "account-status"

    public func run(_ input: [UInt8]) {
        switch self {
        case .session:
            SessionFuzz.run(input)
        case .syncFrame:
            if let f = try? SyncFrame.decode(input) {
                _ = f.encode()
                _ = try? DigestEntry.decode(f.digest ?? [])
            }
        case .endorsement:
            if let e = try? Endorsement.decode(input) { _ = e.encode() }
            _ = try? EndorsementSigner.verify(input, membershipPublicKey: Fixtures.responder.publicKey)
        case .recordValidation:
            _ = RecordValidator.validate(input, alliance: DirectoryFixtures.alliance, now: 1_800_000_000)
        case .memberLink:
            _ = try? MemberLink.parse(String(decoding: input, as: UTF8.self))
        case .subscription:
            _ = try? SubscriptionDocument.decode(input, source: "fuzz")
        case .allianceFile:
            _ = try? AllianceDocument.decode(input, file: "fuzz")
        case .accountStatus:
            _ = try? AccountStatus.decode(input)
        case .preface:
            var gate = PrefaceGate(capacity: 16)
            _ = try? gate.admit(input, key: Fixtures.hopKey, now: 1_800_000_000)
        case .prefaceBlock:
            _ = try? Preface.decodeRequestBlock(input)
        case .hopMessage:
            if let m = try? HopMessage.decode(input) { _ = m.encode() }
        case .stopMessage:
            if let m = try? StopMessage.decode(input) { _ = m.encode() }
        case .handshakeMessage1:
            var responder = NoiseResponder(identity: Fixtures.responder)
            try? responder.readMessage1(input)
        case .handshakeMessage2:
            var initiator = NoiseInitiator(identity: Fixtures.initiator, expectedResponder: Fixtures.responder.nodeID)
            _ = try? initiator.message1()
            _ = try? initiator.readMessage2(input)
        case .handshakeMessage3:
            var responder = Fixtures.responderAwaitingMessage3()
            _ = try? responder.readMessage3(input)
        case .transportFrames:
            var deframer = FrameDeframer()
            var cipher = TransportCipher(key: Fixtures.frameKey)
            deframer.append(input)
            while let body = deframer.nextBody() {
                // Unauthenticated bodies are still decoded as records, to reach that decoder too.
                _ = try? TransportRecord.decode(Array(body))
                if let plain = try? cipher.open(body) { _ = try? TransportRecord.decode(plain) }
            }
        case .egressMessage:
            if let m = try? EgressMessage.decode(input) { _ = try? m.encode() }
        case .egressAuth:
            var verifier = EgressAuthVerifier(exit: Fixtures.responder.nodeID, admission: .anyAccount)
            _ = try? verifier.verify(input, initiatorPublicKey: Fixtures.initiator.publicKey, bindingHash: [], now: 1_800_000_000)
        case .directoryEntry:
            _ = try? EgressDirectoryEntry.decode(input)
        case .signedRecord:
            _ = try? RecordSigner.verify(input)
            _ = try? DirectoryRecord.decode(input)
        case .attestation:
            _ = try? AttestationSigner.verify(input, attesterPublicKey: Fixtures.responder.publicKey)
            _ = try? Attestation.decode(input)
        case .accountPass:
            _ = try? PassSigner.verify(input, issuers: [Fixtures.responder.publicKey], accountID: Fixtures.initiator.accountID, now: 1_800_000_000)
            _ = try? AccountPass.decode(input)
        case .advert:
            _ = try? ReachabilityAdvert.decode(input, currentWindow: 30_000_000)
        case .tlv:
            _ = try? TLV.decode(input)
        case .yamux:
            var connection = YamuxConnection(role: .server)
            // Split the input in two reads to exercise partial headers.
            let cut = input.count / 2
            _ = try? connection.receive(ByteBuffer(bytes: input[..<cut]), now: 0)
            _ = try? connection.receive(ByteBuffer(bytes: input[cut...]), now: 1)
            _ = connection.takeOutbound()
        case .multistream:
            var listener = MultistreamListener(supportedProtocols: [EgressMessage.protocolID])
            _ = try? listener.receive(ByteBuffer(bytes: input))
            if var dialer = try? MultistreamDialer(protocolName: EgressMessage.protocolID) {
                _ = try? dialer.receive(ByteBuffer(bytes: input))
            }
        case .lengthPrefixed:
            var decoder = LengthPrefixedDecoder()
            decoder.append(ByteBuffer(bytes: input))
            while let message = try? decoder.nextMessage() {
                _ = try? EgressMessage.decode(Array(message.readableBytesView))
            }
        case .socks5:
            var handshake = SOCKS5ServerHandshake(credentialsRequired: input.first.map { $0 & 1 == 1 } ?? false)
            handshake.receive(input.dropFirst())
            for _ in 0..<8 {
                guard let step = try? handshake.next() else { break }
                if case .authenticate = step { _ = try? handshake.completeAuthentication(accepted: true) }
                if case .request(let request, _) = step {
                    ProxyEgress.roundTrip(request.address, port: request.port, transport: request.command == .udpAssociate ? .udp : .tcp)
                    break
                }
                if case .needMoreBytes = step { break }
            }
            if let datagram = try? SOCKS5UDPDatagram.decode(input) {
                ProxyEgress.roundTrip(datagram.address, port: datagram.port, transport: .udp)
                ProxyEgress.roundTripData(datagram.payload)
                _ = datagram.encode()
            }
        case .httpProxy:
            var parser = HTTPProxyRequestParser()
            parser.receive(input)
            if case .request(let request, let leftover)? = try? parser.next() {
                // What LocalProxyHandler sends: the host as a name (the exit resolves literals too).
                ProxyEgress.roundTrip(.host(request.host), port: request.port, transport: .tcp)
                ProxyEgress.roundTripData(leftover)
            }
            _ = try? ExitSelection.parse(username: String(decoding: input.prefix(64), as: UTF8.self))
        case .exitPolicyEntry:
            _ = try? ExitPolicyEntry.parse(String(decoding: input.prefix(128), as: UTF8.self))
            if let address = IPAddress(String(decoding: input.prefix(64), as: UTF8.self)) {
                _ = ExitPolicy(configuration: ExitPolicyConfiguration()).check(host: nil, addresses: [address], port: 443)
            }
        }
    }
}

/// The oracle for the proxy targets: whatever a local proxy parser accepts, the client turns
/// into an EgressOpen (and EgressData) for the exit. That must encode without trapping and
/// decode back to the same message; a parser that accepts what the wire cannot carry (the
/// 400-byte bracketed host of issue 6) fails here, loudly, as a fuzzer finding.
enum ProxyEgress {
    static func roundTrip(_ address: EgressAddress, port: UInt16, transport: EgressTransport) {
        let message = EgressMessage.open(EgressOpen(streamID: 1, transport: transport, address: address, port: port))
        let bytes: [UInt8]
        do {
            bytes = try message.encode()
        } catch {
            fatalError("a proxy parser accepted a destination EgressOpen cannot carry: \(error)")
        }
        guard let decoded = try? EgressMessage.decode(bytes), decoded == message else {
            fatalError("EgressOpen for an accepted destination does not round-trip")
        }
    }

    /// Optimistic or datagram bytes, split as the client splits them.
    static func roundTripData(_ payload: [UInt8]) {
        var offset = 0
        repeat {
            let n = min(EgressMessage.maxPayload, payload.count - offset)
            let message = EgressMessage.data(streamID: 1, payload: Array(payload[offset..<offset + n]))
            guard let bytes = try? message.encode(), let decoded = try? EgressMessage.decode(bytes), decoded == message else {
                fatalError("EgressData of \(n) bytes does not round-trip")
            }
            offset += n
        } while offset < payload.count
    }
}

enum Fixtures {
    static let hopKey = try! KEMKey(seed: [UInt8](repeating: 0x12, count: 32))
    static let initiator = try! IdentityKey(seed: [UInt8](repeating: 0x31, count: 32))
    static let responder = try! IdentityKey(seed: [UInt8](repeating: 0x21, count: 32))
    static let frameKey = [UInt8](repeating: 7, count: 32)
    static let message1: [UInt8] = {
        var handshake = NoiseInitiator(identity: Fixtures.initiator, expectedResponder: nil)
        return try! handshake.message1()
    }()

    static func responderAwaitingMessage3() -> NoiseResponder {
        var r = NoiseResponder(identity: responder)
        try! r.readMessage1(message1)
        _ = try! r.message2(payload: [])
        return r
    }
}

/// A fixed alliance for the directory targets (created once: its keys are random, which does not
/// matter to a decoder).
enum DirectoryFixtures {
    static let alliance: AllianceDocument = {
        guard let (doc, _) = try? Alliance.create(name: "fuzz", open: false) else { fatalError("cannot create the fuzz alliance") }
        return doc
    }()
}
