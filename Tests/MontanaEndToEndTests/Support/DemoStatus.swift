import MontanaNode
import Foundation

/// The demo's status file (decoded by the product's own type), with the lookups tests use.
typealias DemoStatus = DemoStatusFile

extension DemoStatusFile.City {
    var metricsURL: String { "http://\(admin.host):\(admin.port)/metrics" }
}

extension DemoStatusFile {
    /// Every port a client's carrier may connect to: the cities' T0 transit and T1 ports.
    var carrierPorts: Set<Int> { Set(cities.map(\.transit.port) + cities.compactMap { $0.t1?.port }) }

    func city(_ name: String) throws -> City {
        guard let city = cities.first(where: { $0.name == name }) else {
            throw E2EError("the demo status has no city \(name) (has \(cities.map(\.name)))")
        }
        return city
    }

    /// The exit city for a country code such as "DE".
    func exit(country: String) throws -> City {
        guard let city = cities.first(where: { $0.isExit && $0.country == country }) else {
            throw E2EError("the demo status has no exit in \(country)")
        }
        return city
    }
}
