import Foundation
import NIOHTTP1

/// What the admin API answers, separated from the NIO handler so it can be read (and tested)
/// as a plain function from request line to response.
struct AdminRoutes: Sendable {
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
    }

    static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    let metrics: MontanaMetrics
    let status: AdminServer.StatusProvider
    /// More JSON documents by path, e.g. `/directory`.
    var documents: [String: AdminServer.StatusProvider] = [:]

    func respond(method: HTTPMethod, uri: String) -> Response {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        let known = ["/metrics", "/status", "/healthz"] + documents.keys
        guard known.contains(path) else { return Self.text(.notFound, "not found\n") }
        guard method == .GET || method == .HEAD else { return Self.text(.methodNotAllowed, "only GET\n") }
        switch path {
        case "/metrics":
            return Response(status: .ok, contentType: Self.prometheusContentType, body: metrics.exposition())
        case "/status":
            return statusResponse(status)
        case let other where documents[other] != nil:
            return statusResponse(documents[other]!)
        default:
            return Self.text(.ok, "ok\n")
        }
    }

    private func statusResponse(_ provider: AdminServer.StatusProvider) -> Response {
        let document = provider()
        guard JSONSerialization.isValidJSONObject(document),
              let data = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted]) else {
            return Self.text(.internalServerError, "status is not representable as JSON\n")
        }
        return Response(status: .ok, contentType: "application/json", body: Array(data) + [0x0a])
    }

    private static func text(_ status: HTTPResponseStatus, _ body: String) -> Response {
        Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(body.utf8))
    }
}
