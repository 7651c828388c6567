import XCTest
@testable import MontanaExit

/// Members' transit endpoints, which only members' sessions may reach: fed by the directory,
/// so bounded (16,384) and literal addresses only.
final class MemberEndpointsTests: XCTestCase {
    func test_theSetIsBoundedAndTakesOnlyAddressLiterals() {
        let endpoints = MemberEndpoints()
        var list: [(host: String, port: UInt16)] = [("members.example.net", 7443), ("[2001:db8::7]", 7443)]
        for i in 0..<(MemberEndpoints.limit + 100) { list.append(("10.\(i / 65536).\((i / 256) % 256).\(i % 256)", 7443)) }
        endpoints.set(list)
        XCTAssertEqual(endpoints.count, MemberEndpoints.limit, "at most 16,384 endpoints are held")
        XCTAssertTrue(endpoints.contains(IPAddress("2001:db8::7")!, port: 7443), "bracketed IPv6 literals count")
        XCTAssertFalse(endpoints.contains(IPAddress("2001:db8::7")!, port: 7444), "the port must match")
    }
}
