import Foundation
import MontanaDirectory
import NIOCore
import NIOHTTP1
import NIOPosix

/// What a fetch returned: the document's bytes (`body`) (not yet decoded: pass them to
/// `SubscriptionDocument.decode(_:source:)` with the URL as source) and the server's
/// `profile-update-interval` header in hours, if it sent a valid one.
public struct FetchedSubscription: Sendable, Equatable {
    public var body: [UInt8]
    public var updateIntervalHours: Int?

    public init(body: [UInt8], updateIntervalHours: Int?) {
        self.body = body
        self.updateIntervalHours = updateIntervalHours
    }
}

/// Fetches a subscription document: `http://host[:port]/path` with one plain HTTP/1.1 GET, or a
/// file (`/path`, `relative/path` or `file:///path`). Bounded: at most 1 MiB of body
/// (`SubscriptionDocument.maxBytes`), one deadline (10 s by default) for connecting and reading,
/// no redirects followed (the error names the status and location). `https://` is not supported
/// yet and says so.
public enum SubscriptionFetcher {
    public static let maxBodyBytes = SubscriptionDocument.maxBytes
    public static let defaultTimeout: TimeAmount = .seconds(10)

    public static func fetch(url: String, timeout: TimeAmount = defaultTimeout,
                             group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> FetchedSubscription {
        switch try Target(parsing: url) {
        case .file(let path):
            do {
                let bytes = try await NIOThreadPool.singleton.runIfActive { try SubscriptionDocument.readBytes(path: path) }
                return FetchedSubscription(body: bytes, updateIntervalHours: nil)
            } catch let error as SubscriptionFileError {
                throw SubscriptionFetchError(url: url, reason: .file(error.description))
            }
        case .http(let host, let port, let path):
            return try await get(url: url, host: host, port: port, path: path, timeout: timeout, group: group)
        }
    }

    enum Target: Equatable {
        case file(String)
        case http(host: String, port: Int, path: String)

        init(parsing url: String) throws(SubscriptionFetchError) {
            guard !url.isEmpty, url.utf8.count <= SubscriptionUpdate.maxURLBytes else {
                throw SubscriptionFetchError(url: String(url.prefix(64)), reason: .invalidURL("must be 1...\(SubscriptionUpdate.maxURLBytes) bytes"))
            }
            guard let schemeEnd = url.range(of: "://") else {
                self = .file(url)
                return
            }
            let scheme = url[..<schemeEnd.lowerBound].lowercased()
            let rest = url[schemeEnd.upperBound...]
            switch scheme {
            case "file":
                var path = rest
                if path.lowercased().hasPrefix("localhost/") { path = path.dropFirst("localhost".count) }
                guard path.hasPrefix("/"), let decoded = path.removingPercentEncoding else {
                    throw SubscriptionFetchError(url: url, reason: .invalidURL("a file URL is file:///absolute/path"))
                }
                self = .file(decoded)
            case "http":
                guard rest.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                    throw SubscriptionFetchError(url: url, reason: .invalidURL("must be printable ASCII without spaces"))
                }
                let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
                let authority = rest[..<authorityEnd]
                var path = String(rest[authorityEnd...].prefix { $0 != "#" })
                if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
                guard !authority.contains("@") else {
                    throw SubscriptionFetchError(url: url, reason: .invalidURL("user names and passwords in URLs are not supported"))
                }
                let host: Substring
                var portText: Substring?
                if authority.hasPrefix("[") {
                    guard let close = authority.firstIndex(of: "]") else { throw SubscriptionFetchError(url: url, reason: .invalidURL("missing ]")) }
                    host = authority[authority.index(after: authority.startIndex)..<close]
                    let after = authority[authority.index(after: close)...]
                    if !after.isEmpty {
                        guard after.hasPrefix(":") else { throw SubscriptionFetchError(url: url, reason: .invalidURL("junk after ]")) }
                        portText = after.dropFirst()
                    }
                } else if let colon = authority.lastIndex(of: ":") {
                    host = authority[..<colon]
                    portText = authority[authority.index(after: colon)...]
                } else {
                    host = authority
                }
                guard !host.isEmpty else { throw SubscriptionFetchError(url: url, reason: .invalidURL("no host")) }
                var port = 80
                if let portText {
                    guard (1...5).contains(portText.count), let p = Int(portText), (1...65535).contains(p) else {
                        throw SubscriptionFetchError(url: url, reason: .invalidURL("port must be 1...65535"))
                    }
                    port = p
                }
                self = .http(host: String(host), port: port, path: path)
            default:
                throw SubscriptionFetchError(url: url, reason: .unsupportedScheme(scheme))
            }
        }
    }

    private static func get(url: String, host: String, port: Int, path: String, timeout: TimeAmount,
                            group: any EventLoopGroup) async throws -> FetchedSubscription {
        let started = NIODeadline.now()
        let timeoutError = SubscriptionFetchError(url: url, reason: .timeout(milliseconds: timeout.nanoseconds / 1_000_000))
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch ChannelError.connectTimeout {
            throw timeoutError
        } catch {
            throw SubscriptionFetchError(url: url, reason: .connection("\(error)"))
        }
        let remaining = timeout - (NIODeadline.now() - started)
        guard remaining > .zero else {
            channel.close(promise: nil)
            throw timeoutError
        }
        let promise = channel.eventLoop.makePromise(of: FetchedSubscription.self)
        let hostHeader = (host.contains(":") ? "[\(host)]" : host) + (port == 80 ? "" : ":\(port)")
        channel.eventLoop.execute {
            do {
                try channel.pipeline.syncOperations.addHandler(FetchHandler(url: url, limit: maxBodyBytes, promise: promise))
            } catch {
                promise.fail(SubscriptionFetchError(url: url, reason: .connection("\(error)")))
                return
            }
            let deadline = channel.eventLoop.scheduleTask(in: remaining) {
                promise.fail(timeoutError)
            }
            promise.futureResult.whenComplete { _ in
                deadline.cancel()
                channel.close(promise: nil)
            }
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: hostHeader)
            headers.add(name: "Accept", value: "application/json")
            headers.add(name: "Connection", value: "close")
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        return try await promise.futureResult.get()
    }
}

/// Collects one response: 200 only, redirects and other statuses fail at the head, the body is
/// bounded (an announced Content-Length over the limit fails before any body is read).
private final class FetchHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let url: String
    private let limit: Int
    private let promise: EventLoopPromise<FetchedSubscription>
    private var body: [UInt8] = []
    private var interval: Int?
    private var done = false

    init(url: String, limit: Int, promise: EventLoopPromise<FetchedSubscription>) {
        self.url = url
        self.limit = limit
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            let status = Int(head.status.code)
            if (300...399).contains(status) {
                fail(.redirect(status: status, location: head.headers.first(name: "Location").map { String($0.prefix(256)) }))
                return
            }
            guard status == 200 else { fail(.status(status)); return }
            if let length = head.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > limit {
                fail(.tooLarge(limit: limit))
                return
            }
            if let text = head.headers.first(name: "profile-update-interval"), let hours = Int(text.trimmingCharacters(in: .whitespaces)),
               SubscriptionUpdate.intervalHours.contains(hours) {
                interval = hours
            }
        case .body(let buffer):
            guard body.count + buffer.readableBytes <= limit else { fail(.tooLarge(limit: limit)); return }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            done = true
            promise.succeed(FetchedSubscription(body: body, updateIntervalHours: interval))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.connection("closed before the response was complete"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.connection("\(error)"))
        context.close(promise: nil)
    }

    private func fail(_ reason: SubscriptionFetchError.Reason) {
        guard !done else { return }
        done = true
        body = []
        promise.fail(SubscriptionFetchError(url: url, reason: reason))
    }
}
