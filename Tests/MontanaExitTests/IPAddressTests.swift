import XCTest
@testable import MontanaExit

final class IPAddressTests: XCTestCase {
    func test_parsesIPv4AndRejectsAmbiguousOrMalformedText() {
        XCTAssertEqual(IPAddress("192.0.2.1"), .v4(0xc000_0201))
        XCTAssertEqual(IPAddress("0.0.0.0"), .v4(0))
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", "a.b.c.d", "1.2.3.-4"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    func test_parsesIPv6IncludingCompressionAndDottedTail() {
        XCTAssertEqual(IPAddress("::"), .v6(high: 0, low: 0))
        XCTAssertEqual(IPAddress("::1"), .v6(high: 0, low: 1))
        XCTAssertEqual(IPAddress("fe80::"), .v6(high: 0xfe80_0000_0000_0000, low: 0))
        XCTAssertEqual(IPAddress("2001:db8::8:800:200c:417a"), .v6(high: 0x2001_0db8_0000_0000, low: 0x0008_0800_200c_417a))
        XCTAssertEqual(IPAddress("::ffff:127.0.0.1"), .v6(high: 0, low: 0xffff_7f00_0001))
        XCTAssertEqual(IPAddress("64:ff9b::10.1.2.3"), .v6(high: 0x0064_ff9b_0000_0000, low: 0x0a01_0203))
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:7:8"), .v6(high: 0x0001_0002_0003_0004, low: 0x0005_0006_0007_0008))
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:7::"), .v6(high: 0x0001_0002_0003_0004, low: 0x0005_0006_0007_0000))
    }

    func test_rejectsMalformedIPv6() {
        for bad in [":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "12345::", "g::1", ":1::",
                    "1::2:", "fe80::1%eth0", "::1.2.3.4:5", "1.2.3.4::", "1:2:3:4:5:6:7", "::ffff:1.2.3"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    func test_bytesRoundTripAndDescriptionIsCanonical() {
        for text in ["10.1.2.3", "::", "::1", "2001:db8::1", "fe80::1:0:0:1", "::ffff:10.0.0.1", "1:0:0:2::3", "64:ff9b::a01:203"] {
            let address = IPAddress(text)
            XCTAssertEqual(address?.description, text)
            XCTAssertEqual(address.flatMap { IPAddress(bytes: $0.bytes) }, address)
        }
        XCTAssertNil(IPAddress(bytes: [1, 2, 3]))
    }

    func test_embeddedIPv4ComesFromMappedAndNAT64Only() {
        XCTAssertEqual(IPAddress("::ffff:10.0.0.1")?.embeddedIPv4, IPAddress("10.0.0.1"))
        XCTAssertEqual(IPAddress("64:ff9b::10.0.0.1")?.embeddedIPv4, IPAddress("10.0.0.1"))
        XCTAssertNil(IPAddress("64:ff9b:1::10.0.0.1")?.embeddedIPv4)
        XCTAssertNil(IPAddress("2001:db8::10.0.0.1")?.embeddedIPv4)
        XCTAssertNil(IPAddress("10.0.0.1")?.embeddedIPv4)
    }

    func test_embeddedIPv4AddressesCoverMappedNAT64SIIT6to4AndTeredo() {
        func embedded(_ text: String) -> [String] { IPAddress(text)?.embeddedIPv4Addresses.map(\.description) ?? ["unparsed"] }
        XCTAssertEqual(embedded("::ffff:10.0.0.1"), ["10.0.0.1"])
        XCTAssertEqual(embedded("64:ff9b::10.0.0.1"), ["10.0.0.1"])
        XCTAssertEqual(embedded("::ffff:0:10.0.0.1"), ["10.0.0.1"], "SIIT")
        XCTAssertEqual(embedded("2002:a00:1::"), ["10.0.0.1"], "6to4: bytes 2...5")
        XCTAssertEqual(embedded("2002:c000:204:1:2:3:4:5"), ["192.0.2.4"])
        // Teredo: client is the last 32 bits inverted, server bytes 4...7.
        XCTAssertEqual(embedded("2001:0:4136:e378:8000:63bf:3fff:fdd2"), ["192.0.2.45", "65.54.227.120"])
        XCTAssertEqual(embedded("2001:0:5db8:d822::ffff:ffff"), ["0.0.0.0", "93.184.216.34"])
        XCTAssertEqual(embedded("2001:1::1"), [], "2001:1::/32 is not Teredo")
        XCTAssertEqual(embedded("2003::1"), [])
        XCTAssertEqual(embedded("::ffff:1:10.0.0.1"), [])
        XCTAssertEqual(embedded("10.0.0.1"), [])
    }

    func test_unspecifiedAndLoopback() {
        XCTAssertEqual(["0.0.0.0", "::", "127.0.0.1", "127.255.0.1", "::1", "::2", "128.0.0.1"].map { IPAddress($0)?.isLoopback },
                       [false, false, true, true, true, false, false])
        XCTAssertEqual(["0.0.0.0", "::", "0.0.0.1", "::1"].map { IPAddress($0)?.isUnspecified }, [true, true, false, false])
    }

    func test_networkContainment() throws {
        let network = try XCTUnwrap(IPNetwork(address: XCTUnwrap(IPAddress("172.16.0.0")), prefixLength: 12))
        XCTAssertTrue(network.contains(try XCTUnwrap(IPAddress("172.31.255.255"))))
        XCTAssertFalse(network.contains(try XCTUnwrap(IPAddress("172.32.0.0"))))
        XCTAssertFalse(network.contains(try XCTUnwrap(IPAddress("::ffff:172.16.0.1"))))
        XCTAssertNil(IPNetwork(address: try XCTUnwrap(IPAddress("10.0.0.1")), prefixLength: 8))
        XCTAssertNil(IPNetwork(address: try XCTUnwrap(IPAddress("10.0.0.0")), prefixLength: 33))
        let everything = try XCTUnwrap(IPNetwork(address: .v6(high: 0, low: 0), prefixLength: 0))
        XCTAssertTrue(everything.contains(try XCTUnwrap(IPAddress("ffff::1"))))
        let v6 = try XCTUnwrap(IPNetwork(address: XCTUnwrap(IPAddress("2001:db8::ff00")), prefixLength: 120))
        XCTAssertTrue(v6.contains(try XCTUnwrap(IPAddress("2001:db8::ffab"))))
        XCTAssertFalse(v6.contains(try XCTUnwrap(IPAddress("2001:db8::1:ffab"))))
    }
}
