import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Reads a JSON document from an admin/status port (`montana status`, `montana directory show`):
/// one HTTP/1.1 GET over loopback, a 10 s deadline, at most 16 MiB of body.
public enum AdminClient {
    public static let maxBody = 16 * 1024 * 1024

    public enum Failure: Error, CustomStringConvertible {
        case status(String, UInt)
        case tooLarge(String)
        case notJSON(String)

        public var description: String {
            switch self {
            case .status(let url, let code): return "\(url) answered HTTP \(code)"
            case .tooLarge(let url): return "\(url): answer larger than 16 MiB"
            case .notJSON(let url): return "\(url): the answer is not a JSON object"
            }
        }
    }

    public static func get(_ address: HostPort, path: String) async throws -> [String: Any] {
        let group = MultiThreadedEventLoopGroup.singleton
        let url = "http://\(address)\(path)"
        let promise = group.next().makePromise(of: (UInt, [UInt8]).self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
                }
            }
            .connect(host: address.host, port: address.port).get()
        } catch {
            // Nothing listens there: the promise must not be left dangling.
            promise.fail(error)
            throw error
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "\(address)")
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) { promise.fail(ChannelError.connectTimeout(.seconds(10))) }
        defer { timeout.cancel(); channel.close(promise: nil) }
        let (code, body) = try await promise.futureResult.get()
        guard code == 200 else { throw Failure.status(url, code) }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { throw Failure.notJSON(url) }
        return object
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<(UInt, [UInt8])>
        var code: UInt = 0
        var body: [UInt8] = []
        var done = false

        init(promise: EventLoopPromise<(UInt, [UInt8])>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): code = head.status.code
            case .body(var buffer):
                guard body.count + buffer.readableBytes <= AdminClient.maxBody else {
                    finish(.failure(Failure.tooLarge("response")))
                    context.close(promise: nil)
                    return
                }
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end: finish(.success((code, body)))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(.failure(ChannelError.eof))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            finish(.failure(error))
            context.close(promise: nil)
        }

        private func finish(_ result: Result<(UInt, [UInt8]), any Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }
    }
}
