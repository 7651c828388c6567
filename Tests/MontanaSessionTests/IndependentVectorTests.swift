import Foundation
import MontanaSession
import MontanaWire
import NIOCore
import XCTest

/// The `egress_stream_open` vector of /work/shared/vectors/independent-v1.json, produced by an
/// independent implementation: what a client sends first on a new egress stream.
final class IndependentVectorTests: XCTestCase {
    private struct Vector: Decodable {
        let session_bytes: String
        let egress_open: String
        let egress_data: String
    }

    private func loadVector() throws -> Vector {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "independent-v1", withExtension: "json",
                                                  subdirectory: "Resources"))
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let entry = try XCTUnwrap(root?["egress_stream_open"])
        return try JSONDecoder().decode(Vector.self, from: JSONSerialization.data(withJSONObject: entry))
    }

    func test_egressStreamOpenVectorYieldsStreamProtocolAndBothMessages() throws {
        let vector = try loadVector()
        let sessionBytes = try XCTUnwrap(Hex.decode(vector.session_bytes))

        var yamux = YamuxConnection(role: .server)
        let events = try yamux.receive(ByteBuffer(bytes: sessionBytes), now: 0)
        XCTAssertEqual(events.control, [.streamOpened(YamuxStreamID(1))])
        XCTAssertEqual(yamux.takeOutbound(), header(.windowUpdate, .ack, 1, 0))

        var listener = MultistreamListener(supportedProtocols: ["/montana/egress/1.0.0"])
        let step = try listener.receive(ByteBuffer(bytes: events.bytes(on: YamuxStreamID(1))))
        guard case .selected(let protocolName, let leftover) = step.outcome else {
            return XCTFail("negotiation did not complete: \(step.outcome)")
        }
        XCTAssertEqual(protocolName, "/montana/egress/1.0.0")

        var decoder = LengthPrefixedDecoder()
        decoder.append(leftover)
        var messages: [String] = []
        while let message = try decoder.nextMessage() { messages.append(Hex.encode(message.readableBytesView)) }
        XCTAssertEqual(messages, [vector.egress_open, vector.egress_data])
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }
}
