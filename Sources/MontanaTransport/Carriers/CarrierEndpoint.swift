/// One way to reach a member: a carrier profile, where to dial, and the profile's parameters
/// (T3: the obfs4 bridge `cert` and `iat-mode`). The directory carries `params` as `k=v&k=v`
/// (PROTOCOL.md 8.2); parsing is bounded because records come from other members.
public struct CarrierEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var profile: CarrierProfile
    public var host: String
    public var port: Int
    public var params: [String: String]

    /// Bounds on `params` text from a record: at most 16 pairs, 1024 bytes in all, keys of
    /// 1-32 characters `[A-Za-z0-9_-]`, values without `&`, `=` or control characters.
    public static let maxParams = 16
    public static let maxParamsBytes = 1024
    public static let maxKeyBytes = 32

    public init(profile: CarrierProfile, host: String, port: Int, params: [String: String] = [:]) {
        self.profile = profile
        self.host = host
        self.port = port
        self.params = params
    }

    public enum ParamsError: Error, Equatable, Sendable, CustomStringConvertible {
        case tooLong(Int)
        case tooMany(Int)
        case malformed(String)
        case duplicate(String)

        public var description: String {
            switch self {
            case .tooLong(let n): return "params are \(n) bytes; at most \(CarrierEndpoint.maxParamsBytes)"
            case .tooMany(let n): return "\(n) params; at most \(CarrierEndpoint.maxParams)"
            case .malformed(let pair): return "\"\(pair.prefix(40))\" is not key=value (key 1-\(CarrierEndpoint.maxKeyBytes) of A-Z a-z 0-9 _ -, value without & = or control characters)"
            case .duplicate(let key): return "key \"\(key)\" appears twice"
            }
        }
    }

    /// Parses `k=v&k=v` ("" is no params).
    public static func parseParams(_ text: String) throws(ParamsError) -> [String: String] {
        guard text.utf8.count <= maxParamsBytes else { throw .tooLong(text.utf8.count) }
        guard !text.isEmpty else { return [:] }
        let pairs = text.split(separator: "&", omittingEmptySubsequences: false)
        guard pairs.count <= maxParams else { throw .tooMany(pairs.count) }
        var out: [String: String] = [:]
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw .malformed(String(pair)) }
            let key = String(parts[0]), value = String(parts[1])
            guard (1...maxKeyBytes).contains(key.utf8.count), key.utf8.allSatisfy(isKeyByte),
                  value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f && $0 != "=" && $0 != "&" }) else {
                throw .malformed(String(pair))
            }
            guard out[key] == nil else { throw .duplicate(key) }
            out[key] = value
        }
        return out
    }

    /// `k=v&k=v`, keys sorted (stable records).
    public static func encodeParams(_ params: [String: String]) -> String {
        params.keys.sorted().map { "\($0)=\(params[$0]!)" }.joined(separator: "&")
    }

    private static func isKeyByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x5f || b == 0x2d
    }

    public var description: String { "\(profile) \(host.contains(":") ? "[\(host)]" : host):\(port)" }
}
