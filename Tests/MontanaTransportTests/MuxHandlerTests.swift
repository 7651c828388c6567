import MontanaCrypto
import MontanaSession
import MontanaTransport
import NIOCore
import NIOEmbedded
import XCTest

/// Two `MuxHandler`s joined back to back through embedded channels (the session layer below is
/// replaced by the wire between them), so stream semantics and backpressure are tested without
/// sockets or crypto.
final class MuxHandlerTests: XCTestCase {
    final class Pair {
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()
        let clientMux = MuxHandler(role: .client)
        let serverMux = MuxHandler(role: .server)

        init(services: [any StreamService]) throws {
            serverMux.setServices(services)
            try client.pipeline.syncOperations.addHandler(clientMux)
            try server.pipeline.syncOperations.addHandler(serverMux)
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
            try client.connect(to: address).wait()
            try server.connect(to: address).wait()
            let event = SessionEstablished(peer: NoisePeer(identityPublicKey: [], payload: []), sessionID: [], admission: SessionAdmission())
            client.pipeline.fireUserInboundEventTriggered(event)
            server.pipeline.fireUserInboundEventTriggered(event)
        }

        /// Moves bytes both ways until nothing is in flight.
        func pump() throws {
            var moved = true
            while moved {
                moved = false
                while let out = try client.readOutbound(as: ByteBuffer.self) {
                    try server.writeInbound(out)
                    moved = true
                }
                while let out = try server.readOutbound(as: ByteBuffer.self) {
                    try client.writeInbound(out)
                    moved = true
                }
            }
        }
    }

    /// Collects what a stream receives, consuming only when told to (a slow reader).
    final class Sink: StreamService {
        let protocolName = "/test/sink/1.0.0"
        var received = ByteBuffer()
        var stream: MuxStream?
        var ended = false
        var autoConsume: Bool
        private var consumedCount = 0

        init(autoConsume: Bool) { self.autoConsume = autoConsume }

        /// Reports everything received so far as passed on.
        func consumeAll() {
            stream?.consumed(received.readableBytes - consumedCount)
            consumedCount = received.readableBytes
        }

        func serve(_ stream: MuxStream, session: MuxHandler) {
            self.stream = stream
            stream.onData = { [unowned self] buffer in
                var buffer = buffer
                let n = buffer.readableBytes
                received.writeBuffer(&buffer)
                if autoConsume {
                    stream.consumed(n)
                    consumedCount += n
                }
            }
            stream.onEnd = { [unowned self] end in if end == .remoteFinished { ended = true } }
            stream.startReading()
        }
    }

    func test_bulkWritesPastTheStreamQueueAreDeliveredCompleteAndInOrder() throws {
        let sink = Sink(autoConsume: false)
        let pair = try Pair(services: [sink])
        var accepted: Bool?
        let stream = try XCTUnwrap(pair.clientMux.openStream(protocol: sink.protocolName) { accepted = $0 })
        // Write 1 MiB at once, ignoring backpressure: within the overflow bound nothing may be
        // dropped (past it the stream is reset, see MuxHostilePeerTests).
        var expected = ByteBuffer()
        for i in 0..<16 {
            let chunk = ByteBuffer(bytes: (0..<65536).map { UInt8(truncatingIfNeeded: $0 &+ i) })
            expected.writeImmutableBuffer(chunk)
            stream.write(chunk)
        }
        stream.closeWrite()
        // The reader consumes slowly; windows reopen only as it does.
        for _ in 0..<10_000 {
            try pair.pump()
            sink.consumeAll()
            if sink.ended { break }
        }
        XCTAssertEqual(accepted, true)
        XCTAssertTrue(sink.ended, "FIN arrives after all the data")
        XCTAssertEqual(sink.received.readableBytes, expected.readableBytes)
        XCTAssertEqual(sink.received, expected)
    }

    func test_writeReportsBackpressureUntilThePeerConsumes() throws {
        let sink = Sink(autoConsume: false)
        let pair = try Pair(services: [sink])
        let stream = try XCTUnwrap(pair.clientMux.openStream(protocol: sink.protocolName) { _ in })
        var writable = true
        var writes = 0
        while writable && writes < 1000 {
            writable = stream.write(ByteBuffer(repeating: 7, count: 16384))
            writes += 1
            try pair.pump()
        }
        XCTAssertFalse(writable, "the source is told to pause once windows and queues are full")
        var resumed = false
        stream.onWritable = { resumed = true }
        sink.consumeAll()
        try pair.pump()
        XCTAssertTrue(resumed, "consumption at the far end reopens the stream")
    }

    func test_unknownProtocolIsRefused() throws {
        let pair = try Pair(services: [Sink(autoConsume: true)])
        var accepted: Bool?
        _ = pair.clientMux.openStream(protocol: "/nope/1.0.0") { accepted = $0 }
        try pair.pump()
        XCTAssertEqual(accepted, false)
    }
}

