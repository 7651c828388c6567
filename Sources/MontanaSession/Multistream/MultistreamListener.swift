import NIOCore

/// The side that accepts a stream: echoes the header as soon as it has read it, then echoes a
/// supported protocol or answers `na` (after which the caller resets the stream).
public struct MultistreamListener: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Feed more bytes.
        case needMoreData
        /// Negotiated; `leftover` is application data the dialer pipelined after its protocol line.
        case selected(protocolName: String, leftover: ByteBuffer)
        /// Not supported; `na` is in the response. Send it, then reset the stream.
        case rejected(protocolName: String)
    }

    /// What one `receive` call produced.
    public struct Step: Equatable, Sendable {
        /// Bytes to send to the dialer (header echo, protocol echo or `na`), if any.
        public var response: ByteBuffer?
        public var outcome: Outcome
    }

    private enum State: Sendable {
        case awaitingHeader
        case awaitingProtocol
        case done
    }

    public let supportedProtocols: Set<String>
    private var reader: MultistreamLineReader
    private var state = State.awaitingHeader

    public init(supportedProtocols: Set<String>, maxLineLength: Int = MultistreamSelect.defaultMaxLineLength) {
        self.supportedProtocols = supportedProtocols
        self.reader = MultistreamLineReader(maxLineLength: maxLineLength)
    }

    /// Feeds bytes the dialer sent. Calling it again after a final outcome returns `.needMoreData`
    /// with no response: the negotiation is over and later bytes belong to the application.
    public mutating func receive(_ bytes: ByteBuffer) throws(MultistreamError) -> Step {
        guard state != .done else { return Step(response: nil, outcome: .needMoreData) }
        reader.append(bytes)
        var response: ByteBuffer?
        while let line = try reader.nextLine() {
            var out = response ?? ByteBuffer()
            defer { response = out }
            switch state {
            case .awaitingHeader:
                guard line == MultistreamSelect.header else { throw .unexpectedHeader(line) }
                MultistreamSelect.writeLine(MultistreamSelect.header, into: &out)
                state = .awaitingProtocol
            case .awaitingProtocol:
                state = .done
                if supportedProtocols.contains(line) {
                    MultistreamSelect.writeLine(line, into: &out)
                    return Step(response: out, outcome: .selected(protocolName: line, leftover: reader.takeRemainder()))
                }
                MultistreamSelect.writeLine(MultistreamSelect.notAvailable, into: &out)
                return Step(response: out, outcome: .rejected(protocolName: line))
            case .done:
                break
            }
        }
        return Step(response: response, outcome: .needMoreData)
    }
}
