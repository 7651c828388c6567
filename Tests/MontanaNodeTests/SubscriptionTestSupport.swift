import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaWire
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Documents, curl and canned HTTP servers for the subscription server and fetcher tests.
enum SubscriptionTestSupport {
    static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "montana-sub-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A valid document with a pass (quota 5 GiB), update URL `http://127.0.0.1/custom/feed?token=abc`
    /// every 6 hours.
    static func document(title: String = "Friends of Montana") throws -> SubscriptionDocument {
        let (alliance, secret) = try Alliance.create(name: "Test Alliance", open: false)
        let link = MemberLink(alliance: alliance.uuidBytes, host: "127.0.0.1", port: 7443, nodeID: try IdentityKey.generate().nodeID,
                              kemPublicKey: try KEMKey.generate().publicKey, label: "front")
        let pass = try PassFile.issue(secret: secret, accountID: [UInt8](repeating: 4, count: 32), days: 30, quotaBytes: 5 << 30,
                                      now: 1_800_000_000)
        return try SubscriptionDocument.create(alliance: alliance, links: [link], title: title, account: SubscriptionAccount(pass: pass),
                                               update: SubscriptionUpdate(url: "http://127.0.0.1/custom/feed?token=abc", intervalHours: 6),
                                               now: 1_800_000_000)
    }

    struct CurlResult {
        var exitCode: Int32
        var status: Int?
        /// Lower-cased names.
        var headers: [String: String]
        var headerNames: [String]
        var body: [UInt8]
    }

    /// `curl -q -sS -D <headers> -o <body> --max-time 10 ARGS`, with no proxy from the environment.
    static func curl(_ arguments: [String]) throws -> CurlResult {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let headerPath = dir + "/headers", bodyPath = dir + "/body"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-q", "-sS", "--noproxy", "*", "--max-time", "10", "-D", headerPath, "-o", bodyPath] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let headerText = (try? String(contentsOfFile: headerPath, encoding: .utf8)) ?? ""
        let lines = headerText.components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        var names: [String] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            names.append(name)
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) }
        return CurlResult(exitCode: process.terminationStatus, status: status, headers: headers, headerNames: names,
                          body: Array(FileManager.default.contents(atPath: bodyPath) ?? Data()))
    }

    /// Connects, sends nothing, and waits (at most `limit` seconds) for the server to close;
    /// returns how long that took, or nil if it did not close.
    static func secondsUntilClosed(port: Int, limit: Int) throws -> TimeInterval? {
        let fd = try RawHTTP.connect(port: port, timeout: limit)
        defer { close(fd) }
        let start = Date()
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n == 0 ? Date().timeIntervalSince(start) : nil
    }
}

/// A loopback HTTP server that answers every connection's first read with fixed bytes and then
/// closes, or (`response` nil) reads and never answers.
final class CannedHTTPServer: @unchecked Sendable {
    private let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    init(response: [UInt8]?) async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(CannedHandler(response: response))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    func stop() async {
        try? await channel.close()
    }

    static func response(status: String, headers: [String], body: [UInt8]) -> [UInt8] {
        Array(("HTTP/1.1 \(status)\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n").utf8) + body
    }
}

private final class CannedHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let response: [UInt8]?
    private var answered = false

    init(response: [UInt8]?) { self.response = response }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let response, !answered else { return }
        answered = true
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: response))).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
