import NIOCore

/// The side that opens a stream and proposes one protocol, pipelined: it sends `initialBytes` and
/// its first message together, then checks the listener's header echo and protocol echo (or `na`).
public struct MultistreamDialer: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Feed more bytes.
        case needMoreData
        /// The listener echoed the protocol; `leftover` is application data that followed it.
        case accepted(leftover: ByteBuffer)
        /// The listener answered `na`; reset the stream.
        case rejected
    }

    private enum State: Sendable {
        case awaitingHeader
        case awaitingProtocol
        case accepted
        case rejected
    }

    public let protocolName: String
    private var reader: MultistreamLineReader
    private var state = State.awaitingHeader

    /// Throws `.invalidProtocolName` when `protocolName` cannot be a multistream line.
    public init(protocolName: String, maxLineLength: Int = MultistreamSelect.defaultMaxLineLength) throws(MultistreamError) {
        guard MultistreamSelect.isValidLine(protocolName, maxLineLength: maxLineLength) else {
            throw .invalidProtocolName(protocolName)
        }
        self.protocolName = protocolName
        self.reader = MultistreamLineReader(maxLineLength: maxLineLength)
    }

    /// Header and protocol line; send them at once, followed by the first application message.
    public var initialBytes: ByteBuffer {
        var buffer = ByteBuffer()
        MultistreamSelect.writeLine(MultistreamSelect.header, into: &buffer)
        MultistreamSelect.writeLine(protocolName, into: &buffer)
        return buffer
    }

    /// Feeds bytes the listener sent. After `.accepted`, later bytes come straight back as leftover.
    public mutating func receive(_ bytes: ByteBuffer) throws(MultistreamError) -> Outcome {
        switch state {
        case .accepted: return .accepted(leftover: bytes)
        case .rejected: return .rejected
        case .awaitingHeader, .awaitingProtocol: break
        }
        reader.append(bytes)
        while let line = try reader.nextLine() {
            switch state {
            case .awaitingHeader:
                guard line == MultistreamSelect.header else { throw .unexpectedHeader(line) }
                state = .awaitingProtocol
            case .awaitingProtocol:
                if line == protocolName {
                    state = .accepted
                    return .accepted(leftover: reader.takeRemainder())
                }
                guard line == MultistreamSelect.notAvailable else { throw .unexpectedResponse(line) }
                state = .rejected
                return .rejected
            case .accepted, .rejected:
                break
            }
        }
        return .needMoreData
    }
}
