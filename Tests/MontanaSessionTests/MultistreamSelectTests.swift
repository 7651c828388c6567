import MontanaSession
import MontanaWire
import NIOCore
import XCTest

final class MultistreamSelectTests: XCTestCase {
    private let egress = "/montana/egress/1.0.0"

    private func lines(_ texts: String...) -> ByteBuffer {
        var buffer = ByteBuffer()
        for text in texts { MultistreamSelect.writeLine(text, into: &buffer) }
        return buffer
    }

    func test_dialerPipelinesHeaderAndProtocolLine() throws {
        let dialer = try MultistreamDialer(protocolName: egress)
        XCTAssertEqual(Hex.encode(dialer.initialBytes.readableBytesView),
                       "132f6d756c746973747265616d2f312e302e300a162f6d6f6e74616e612f6567726573732f312e302e300a")
    }

    func test_listenerEchoesTheHeaderBeforeTheProtocolLineArrives() throws {
        var listener = MultistreamListener(supportedProtocols: [egress])
        let step = try listener.receive(lines(MultistreamSelect.header))
        XCTAssertEqual(step.response, lines(MultistreamSelect.header))
        XCTAssertEqual(step.outcome, .needMoreData)
    }

    func test_listenerEchoesASupportedProtocolAndReturnsPipelinedData() throws {
        var listener = MultistreamListener(supportedProtocols: [egress])
        var input = lines(MultistreamSelect.header, egress)
        input.writeString("first message")
        let step = try listener.receive(input)
        XCTAssertEqual(step.response, lines(MultistreamSelect.header, egress))
        XCTAssertEqual(step.outcome, .selected(protocolName: egress, leftover: ByteBuffer(string: "first message")))
    }

    func test_listenerAnswersNaForAnUnsupportedProtocol() throws {
        var listener = MultistreamListener(supportedProtocols: [egress])
        _ = try listener.receive(lines(MultistreamSelect.header))
        let step = try listener.receive(lines("/montana/directory/1.0.0"))
        XCTAssertEqual(step.response, lines("na"))
        XCTAssertEqual(step.outcome, .rejected(protocolName: "/montana/directory/1.0.0"))
    }

    func test_dialerAcceptsTheEchoFedByteByByteAndKeepsTheLeftover() throws {
        var dialer = try MultistreamDialer(protocolName: egress)
        var input = lines(MultistreamSelect.header, egress)
        input.writeString("ack")
        var outcomes: [MultistreamDialer.Outcome] = []
        for byte in input.readableBytesView {
            outcomes.append(try dialer.receive(ByteBuffer(bytes: [byte])))
        }
        XCTAssertEqual(outcomes.filter { $0 != .needMoreData }.count, 4)
        let accepted = outcomes.first { $0 != .needMoreData }
        XCTAssertEqual(accepted, .accepted(leftover: ByteBuffer()))
        XCTAssertEqual(outcomes.last, .accepted(leftover: ByteBuffer(string: "k")))
    }

    func test_dialerReportsRejectionOnNa() throws {
        var dialer = try MultistreamDialer(protocolName: egress)
        XCTAssertEqual(try dialer.receive(lines(MultistreamSelect.header, "na")), .rejected)
    }

    func test_dialerAndListenerAgreeEndToEnd() throws {
        var dialer = try MultistreamDialer(protocolName: egress)
        var listener = MultistreamListener(supportedProtocols: [egress, "/ipfs/ping/1.0.0"])
        var request = dialer.initialBytes
        request.writeString("payload")
        let step = try listener.receive(request)
        XCTAssertEqual(step.outcome, .selected(protocolName: egress, leftover: ByteBuffer(string: "payload")))
        XCTAssertEqual(try dialer.receive(try XCTUnwrap(step.response)), .accepted(leftover: ByteBuffer()))
    }

    func test_wrongHeaderIsRejected() {
        var listener = MultistreamListener(supportedProtocols: [egress])
        XCTAssertThrowsError(try listener.receive(lines("/multistream/2.0.0"))) {
            XCTAssertEqual($0 as? MultistreamError, .unexpectedHeader("/multistream/2.0.0"))
        }
    }

    func test_dialerRejectsAGarbageResponse() throws {
        var dialer = try MultistreamDialer(protocolName: egress)
        XCTAssertThrowsError(try dialer.receive(lines(MultistreamSelect.header, "/other/1.0.0"))) {
            XCTAssertEqual($0 as? MultistreamError, .unexpectedResponse("/other/1.0.0"))
        }
    }

    func test_overlongLineIsRejectedBeforeItIsBuffered() {
        var listener = MultistreamListener(supportedProtocols: [egress])
        var input = ByteBuffer(bytes: UVarint.encode(1025))
        input.writeString("/")
        XCTAssertThrowsError(try listener.receive(input)) {
            XCTAssertEqual($0 as? MultistreamError, .lineTooLong(length: 1025, limit: 1024))
        }
    }

    func test_lineWithoutNewlineIsRejected() {
        var listener = MultistreamListener(supportedProtocols: [egress])
        var input = ByteBuffer(bytes: [3])
        input.writeString("abc")
        XCTAssertThrowsError(try listener.receive(input)) {
            XCTAssertEqual($0 as? MultistreamError, .missingNewline)
        }
    }

    func test_nonPrintableLineIsRejected() {
        var listener = MultistreamListener(supportedProtocols: [egress])
        XCTAssertThrowsError(try listener.receive(ByteBuffer(bytes: [3, 0x00, 0xff, 0x0a]))) {
            XCTAssertEqual($0 as? MultistreamError, .invalidCharacters)
        }
    }

    func test_emptyMessageAndOverflowingLengthAreRejected() {
        var empty = MultistreamListener(supportedProtocols: [egress])
        XCTAssertThrowsError(try empty.receive(ByteBuffer(bytes: [0]))) {
            XCTAssertEqual($0 as? MultistreamError, .emptyLine)
        }
        var overflow = MultistreamListener(supportedProtocols: [egress])
        XCTAssertThrowsError(try overflow.receive(ByteBuffer(bytes: [UInt8](repeating: 0xff, count: 11)))) {
            XCTAssertEqual($0 as? MultistreamError, .malformedLength)
        }
    }

    func test_dialerRefusesAProtocolNameThatCannotBeALine() {
        for name in ["", "bad\nname", String(repeating: "a", count: 1024)] {
            XCTAssertThrowsError(try MultistreamDialer(protocolName: name)) {
                XCTAssertEqual($0 as? MultistreamError, .invalidProtocolName(name))
            }
        }
    }

    func test_randomBytesNeverCrashTheListener() {
        var rng = SplitMix64(state: 99)
        for _ in 0..<2_000 {
            var listener = MultistreamListener(supportedProtocols: [egress])
            var input = Bool.random(using: &rng) ? lines(MultistreamSelect.header) : ByteBuffer()
            input.writeBytes((0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            do throws(MultistreamError) {
                _ = try listener.receive(input)
            } catch {
                XCTAssertFalse(error.description.isEmpty)
            }
        }
    }
}
