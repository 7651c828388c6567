/// Quoting of untrusted text inside error messages: hostile files and links must not be able to
/// put terminal escape sequences or megabytes of text into an error a user reads.
enum Printable {
    /// `"text"` with control characters (C0, DEL, C1) replaced by `?`, cut to `limit` characters
    /// (64 by default, a label's length) with `…` marking the cut.
    static func quote<S: StringProtocol>(_ text: S, limit: Int = 64) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit { out += "…"; break }
            out.unicodeScalars.append(isControl(scalar) ? "?" : scalar)
            count += 1
        }
        return "\"" + out + "\""
    }

    /// C0 controls, DEL and C1 controls: never allowed in labels and titles shown to users.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
    }
}
