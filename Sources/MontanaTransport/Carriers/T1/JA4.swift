import MontanaCrypto

/// JA4 (FoxIO, `technical_details/JA4.md`) of a ClientHello seen over TCP, computed from the raw
/// hello so the T1 fingerprint tests need no JA4-capable Wireshark (bookworm's tshark 4.0 lacks it):
///
///     a = "t" ‖ version (highest non-GREASE supported_version, else legacy) ‖ "d"|"i" (SNI present)
///         ‖ cipher count (2 digits, GREASE removed) ‖ extension count (2 digits, GREASE removed)
///         ‖ first and last character of the first ALPN value ("00" without ALPN)
///     b = sha256(sorted 4-hex cipher list joined by ",")[:12]
///     c = sha256(sorted extensions without SNI/ALPN ‖ "_" ‖ signature algorithms in wire order)[:12]
public enum JA4 {
    public static func isGREASE(_ v: UInt16) -> Bool { (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff) }

    static func hex4(_ v: UInt16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 4 - s.count) + s
    }

    static func hash12(_ s: String) -> String {
        if s.isEmpty { return "000000000000" }
        return Digests.sha256(Array(s.utf8)).prefix(6).map { b in
            let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h
        }.joined()
    }

    /// The canonical strings before hashing (JA4_r's b and c parts), for diagnostics.
    public static func raw(_ h: ParsedClientHello) -> (ciphers: String, extensions: String) {
        let ciphers = h.cipherSuites.filter { !isGREASE($0) }.map(hex4).sorted().joined(separator: ",")
        let exts = h.extensionTypes.filter { !isGREASE($0) && $0 != 0x0000 && $0 != 0x0010 }.map(hex4).sorted()
            .joined(separator: ",")
        let sigs = h.signatureAlgorithms.map(hex4).joined(separator: ",")
        return (ciphers, sigs.isEmpty ? exts : exts + "_" + sigs)
    }

    public static func fingerprint(_ h: ParsedClientHello) -> String {
        let versions = h.supportedVersions.filter { !isGREASE($0) }
        let v = versions.max() ?? h.legacyVersion
        let vs: String
        switch v {
        case 0x0304: vs = "13"
        case 0x0303: vs = "12"
        case 0x0302: vs = "11"
        case 0x0301: vs = "10"
        default: vs = "00"
        }
        let exts = h.extensionTypes.filter { !isGREASE($0) }
        let ciphers = h.cipherSuites.filter { !isGREASE($0) }
        let sni = exts.contains(0x0000) ? "d" : "i"
        var alpn = "00"
        if let first = h.alpn.first, let a = first.first, let z = first.last {
            alpn = a.isASCII && z.isASCII ? String(a) + String(z) : "99"
        }
        func two(_ n: Int) -> String { let m = min(n, 99); return m < 10 ? "0\(m)" : "\(m)" }
        let (c, e) = raw(h)
        return "t\(vs)\(sni)\(two(ciphers.count))\(two(exts.count))\(alpn)_\(hash12(c))_\(hash12(e))"
    }
}
