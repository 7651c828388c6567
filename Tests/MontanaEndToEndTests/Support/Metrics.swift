import Foundation

/// A parsed Prometheus text exposition (format 0.0.4): one sample per series line.
struct PrometheusText: CustomStringConvertible {
    struct Sample {
        let name: String
        let labels: String
        let value: Double
    }

    let text: String
    let samples: [Sample]

    init(_ text: String) {
        self.text = text
        var samples: [Sample] = []
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            // name{labels} value [timestamp]   or   name value [timestamp]
            let name: Substring
            var labels = ""
            var rest: Substring
            if let brace = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}") {
                name = line[..<brace]
                labels = String(line[line.index(after: brace)..<close])
                rest = line[line.index(after: close)...]
            } else if let space = line.firstIndex(of: " ") {
                name = line[..<space]
                rest = line[space...]
            } else {
                continue
            }
            rest = rest.drop(while: { $0 == " " })
            let valueText = rest.split(separator: " ").first.map(String.init) ?? ""
            guard let value = Double(valueText) ?? (valueText == "+Inf" ? .infinity : nil) else { continue }
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
        self.samples = samples
    }

    /// Whether any series of `name` is exposed.
    func has(_ name: String) -> Bool { samples.contains { $0.name == name } }

    /// The sum over every series of `name` (all label sets), or nil when none is exposed.
    func value(_ name: String) -> Double? {
        let matching = samples.filter { $0.name == name }
        return matching.isEmpty ? nil : matching.reduce(0) { $0 + $1.value }
    }

    /// The lines of `name`, for failure messages.
    func lines(_ name: String) -> String {
        let matching = samples.filter { $0.name == name }.map { s in "\(s.name){\(s.labels)} \(s.value)" }
        return matching.isEmpty ? "\(name): (not exposed)" : matching.joined(separator: "; ")
    }

    var description: String { text }

    /// GET /metrics from a city's admin port.
    static func scrape(_ city: DemoStatus.City) throws -> PrometheusText {
        let result = try Curl.get(city.metricsURL)
        guard result.succeeded else { throw E2EError("cannot scrape \(city.name): \(result)") }
        return PrometheusText(result.stdoutText)
    }
}
