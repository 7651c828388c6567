/// Why a subscription could not be fetched. The description starts with the URL or path.
public struct SubscriptionFetchError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable, CustomStringConvertible {
        /// `https://` and other schemes; the text says what is supported.
        case unsupportedScheme(String)
        case invalidURL(String)
        /// A 3xx answer: redirects are not followed (a subscription URL should name the document).
        case redirect(status: Int, location: String?)
        /// Any other status but 200.
        case status(Int)
        /// The body (or the announced Content-Length) exceeds the limit.
        case tooLarge(limit: Int)
        case timeout(milliseconds: Int64)
        case connection(String)
        case file(String)

        public var description: String {
            switch self {
            case .unsupportedScheme(let scheme):
                return "\(scheme):// is not supported yet; use an http:// URL or a file path"
            case .invalidURL(let why): return "not a usable URL: \(why)"
            case .redirect(let status, let location):
                return "the server answered \(status) (a redirect\(location.map { " to \($0)" } ?? "")); redirects are not followed, use the final URL"
            case .status(let status): return "the server answered HTTP status \(status), expected 200"
            case .tooLarge(let limit): return "the document is larger than \(limit) bytes"
            case .timeout(let ms): return "no complete answer within \(ms) ms"
            case .connection(let why): return "connection failed: \(why)"
            case .file(let why): return why
            }
        }
    }

    public let url: String
    public let reason: Reason

    public init(url: String, reason: Reason) {
        self.url = url
        self.reason = reason
    }

    public var description: String { "\(url): \(reason)" }
}
