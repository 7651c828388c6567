/// "Did you mean" for unknown keys: the known key with the smallest edit distance, if it is
/// close enough to be a plausible typo rather than a different word.
enum KeySuggestion {
    static func closest(to key: String, among known: [String]) -> String? {
        let lower = key.lowercased()
        var best: (key: String, distance: Int)?
        for candidate in known {
            let d = distance(lower, candidate.lowercased())
            if d < (best?.distance ?? Int.max) { best = (candidate, d) }
        }
        guard let best else { return nil }
        let tolerance = max(1, min(3, key.count / 3))
        return best.distance <= tolerance ? best.key : nil
    }

    /// Levenshtein distance; keys are short, so the quadratic table is fine.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
