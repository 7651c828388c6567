import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftASN1
import X509

/// A small real HTTPS site (TLS 1.2/1.3 via swift-nio-ssl, ALPN http/1.1) with a fresh
/// self-signed certificate for `name`: the cover the demo's T1 fronts relay every connection to
/// (PROTOCOL.md 2.2), playing the part of an operator's own web site. The key and certificate
/// live only in memory and die with the process.
///   GET /   a plain page;  anything else: 404
public final class CoverSite: Sendable {
    public let channel: any Channel
    public let name: String

    private init(channel: any Channel, name: String) {
        self.channel = channel
        self.name = name
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    /// A self-signed P-256 certificate for `name` (30 days), as NIOSSL objects.
    static func selfSigned(name: String) throws -> (NIOSSLCertificate, NIOSSLPrivateKey) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(30 * 86400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                SubjectAlternativeNames([.dnsName(name)])
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.serverAuth])
            },
            issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return (try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der),
                try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
    }

    public static func start(group: any EventLoopGroup, host: String, port: Int, name: String) async throws -> CoverSite {
        let (certificate, key) = try selfSigned(name: name)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CoverPageHandler(name: name))
                }
            }
            .bind(host: host, port: port).get()
        return CoverSite(channel: channel, name: name)
    }
}

final class CoverPageHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let name: String

    init(name: String) { self.name = name }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let found = head.uri == "/" || head.uri.hasPrefix("/?")
        let body = found
            ? "<!doctype html><title>\(name)</title><h1>\(name)</h1><p>A small web site.</p>\n"
            : "<!doctype html><title>404 Not Found</title><h1>Not Found</h1>\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: found ? .ok : .notFound, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if !keepAlive { context.close(promise: nil) } }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
