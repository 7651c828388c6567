import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import MontanaExit

/// A real UDP DNS server on 127.0.0.1 for the resolver tests. Its answers are built here by an
/// encoder of its own (not the product's), from a behaviour closure that sees each question.
final class TestDNSServer: Sendable {
    struct Question: Sendable {
        let id: UInt16
        let name: String
        let type: UInt16
        /// The query's question section (name, type, class), echoed in answers.
        let section: [UInt8]
    }

    struct Record: Sendable {
        var name: String
        var type: UInt16
        var ttl: UInt32
        var data: [UInt8]
    }

    enum Reply: Sendable {
        /// A normal answer (rcode 0 or 3), with answer and authority records.
        case answer(rcode: UInt8, answers: [Record], authority: [Record])
        /// Raw bytes sent back as they are.
        case raw([UInt8])
        /// Nothing: the query is swallowed.
        case none
    }

    let channel: any Channel
    let address: SocketAddress
    private let received = NIOLockedValueBox<[Question]>([])

    var questions: [Question] { received.withLockedValue { $0 } }
    func count(name: String) -> Int { questions.filter { $0.name == name }.count }

    init(group: any EventLoopGroup, behaviour: @escaping @Sendable (Question) -> Reply) throws {
        let log = received
        channel = try DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(log: log, behaviour: behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        guard let local = channel.localAddress else { throw E("no local address") }
        address = local
    }

    func stop() {
        try? channel.close().wait()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let log: NIOLockedValueBox<[Question]>
        let behaviour: @Sendable (Question) -> Reply

        init(log: NIOLockedValueBox<[Question]>, behaviour: @escaping @Sendable (Question) -> Reply) {
            self.log = log
            self.behaviour = behaviour
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard let question = TestDNSServer.parseQuery(Array(envelope.data.readableBytesView)) else { return }
            log.withLockedValue { $0.append(question) }
            let bytes: [UInt8]
            switch behaviour(question) {
            case .none: return
            case .raw(let raw): bytes = raw
            case .answer(let rcode, let answers, let authority):
                bytes = TestDNSServer.response(to: question, rcode: rcode, answers: answers, authority: authority)
            }
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: bytes))),
                                  promise: nil)
        }
    }

    static func parseQuery(_ q: [UInt8]) -> Question? {
        guard q.count >= 17 else { return nil }
        var i = 12
        var labels: [String] = []
        while i < q.count, q[i] != 0 {
            let n = Int(q[i])
            guard i + 1 + n <= q.count else { return nil }
            labels.append(String(decoding: q[(i + 1)..<(i + 1 + n)], as: UTF8.self))
            i += 1 + n
        }
        guard i + 5 <= q.count else { return nil }
        let type = UInt16(q[i + 1]) << 8 | UInt16(q[i + 2])
        return Question(id: UInt16(q[0]) << 8 | UInt16(q[1]), name: labels.joined(separator: "."), type: type,
                        section: Array(q[12..<(i + 5)]))
    }

    static func encodeName(_ name: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in name.split(separator: ".") {
            out.append(UInt8(label.utf8.count))
            out += Array(label.utf8)
        }
        out.append(0)
        return out
    }

    static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func encode(_ r: Record) -> [UInt8] {
        encodeName(r.name) + u16(r.type) + u16(1) + u32(r.ttl) + u16(UInt16(r.data.count)) + r.data
    }

    static func response(to q: Question, rcode: UInt8, answers: [Record], authority: [Record], flags: UInt16 = 0x8180) -> [UInt8] {
        var out = u16(q.id) + u16(flags | UInt16(rcode)) + u16(1) + u16(UInt16(answers.count)) + u16(UInt16(authority.count)) + u16(0)
        out += q.section
        for r in answers { out += encode(r) }
        for r in authority { out += encode(r) }
        return out
    }

    /// An SOA record whose MINIMUM is `minimum`.
    static func soa(zone: String, ttl: UInt32, minimum: UInt32) -> Record {
        let data = encodeName("ns.\(zone)") + encodeName("admin.\(zone)") + u32(1) + u32(3600) + u32(600) + u32(86400) + u32(minimum)
        return Record(name: zone, type: 6, ttl: ttl, data: data)
    }

    static func a(_ name: String, _ address: [UInt8], ttl: UInt32 = 300) -> Record { Record(name: name, type: 1, ttl: ttl, data: address) }
    static func aaaa(_ name: String, _ address: [UInt8], ttl: UInt32 = 300) -> Record { Record(name: name, type: 28, ttl: ttl, data: address) }
    static func cname(_ name: String, _ target: String, ttl: UInt32 = 300) -> Record {
        Record(name: name, type: 5, ttl: ttl, data: encodeName(target))
    }
}

struct E: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
