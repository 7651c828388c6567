import Foundation

/// Why a JSON file could not be decoded, as the `key.path` and the problem that the alliance and
/// subscription file errors print as `FILE: key.path: problem`. Shared by `AllianceJSON` and
/// `SubscriptionJSON`, which differ only in how they name an expected type and what they say
/// about a rejected value.
struct JSONProblem: Error, Equatable {
    /// "(file)" for the file as a whole.
    let key: String
    let problem: String

    /// Decodes `T` from at most `limit` bytes.
    /// - typeName: how the file's reader names an expected type ("a string").
    /// - corrupted: the problem of a `dataCorrupted` error at a key; one with no key (the top of
    ///   the file) is always "not valid JSON".
    static func decode<T: Decodable>(_ type: T.Type, from data: [UInt8], limit: Int, typeName: (Any.Type) -> String,
                                     corrupted: (DecodingError.Context) -> String) -> Result<T, JSONProblem> {
        guard data.count <= limit else { return .failure(JSONProblem(key: "(file)", problem: "is \(data.count) bytes, limit \(limit)")) }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(data)))
        } catch let error as DecodingError {
            return .failure(describe(error, typeName: typeName, corrupted: corrupted))
        } catch {
            return .failure(JSONProblem(key: "(file)", problem: "not valid JSON"))
        }
    }

    static func describe(_ error: DecodingError, typeName: (Any.Type) -> String,
                         corrupted: (DecodingError.Context) -> String) -> JSONProblem {
        switch error {
        case .keyNotFound(let key, let context):
            return JSONProblem(key: keyPath(context.codingPath + [key]), problem: "missing")
        case .typeMismatch(let type, let context):
            return JSONProblem(key: keyPath(context.codingPath), problem: "expected \(typeName(type))")
        case .valueNotFound(let type, let context):
            return JSONProblem(key: keyPath(context.codingPath), problem: "is null, expected \(typeName(type))")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return JSONProblem(key: "(file)", problem: "not valid JSON") }
            return JSONProblem(key: keyPath(context.codingPath), problem: corrupted(context))
        @unknown default:
            return JSONProblem(key: "(file)", problem: "not valid JSON")
        }
    }

    /// `bootstrap[0].endpoints[1].port`; "(file)" for the top of the file. An array index (JSONDecoder
    /// names it "Index N") is written `[N]`, and a named key that starts with `[`
    /// (`NamedKey("[0].link")`) follows its parent without a dot.
    static func keyPath(_ path: [any CodingKey]) -> String {
        var out = ""
        for key in path {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(index)" {
                out += "[\(index)]"
            } else {
                out += out.isEmpty || key.stringValue.hasPrefix("[") ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out.isEmpty ? "(file)" : out
    }

    /// The names both readers give the types they share; nil for any other type.
    static func commonTypeName(_ type: Any.Type) -> String? {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [String].Type: return "an array of strings"
        default: return nil
        }
    }
}
