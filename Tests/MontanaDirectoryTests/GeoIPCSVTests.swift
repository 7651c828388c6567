import Foundation
import XCTest
@testable import MontanaDirectory

final class GeoIPCSVTests: XCTestCase {
    private func table(_ text: String) throws(GeoIPError) -> CSVGeoIP {
        try CSVGeoIP(contents: Array(text.utf8), source: "test.csv")
    }

    private func problem(_ text: String) -> GeoIPError? {
        do { _ = try table(text); return nil } catch { return error }
    }

    func test_longestPrefixWinsForIPv4() throws {
        let db = try table("""
        # country table
        10.0.0.0/8,DE
        10.1.0.0/16,NL

        10.1.2.0/24, fr   # trailing comment, lower-case code
        10.1.2.3/32,AT
        0.0.0.0/0,US
        """)
        XCTAssertEqual(db.count, 5)
        XCTAssertEqual(db.country(forLiteral: "10.200.0.1"), "DE")
        XCTAssertEqual(db.country(forLiteral: "10.1.9.9"), "NL")
        XCTAssertEqual(db.country(forLiteral: "10.1.2.4"), "FR")
        XCTAssertEqual(db.country(forLiteral: "10.1.2.3"), "AT")
        XCTAssertEqual(db.country(forLiteral: "192.0.2.1"), "US", "the /0 default route catches the rest")
        XCTAssertEqual(db.country(for: [10, 1, 2, 3]), "AT")
    }

    func test_ipv6AndMappedIPv4() throws {
        let db = try table("2001:db8::/32,FR\n2001:db8:1::/48,BE\n2001:db8:1:0:0:0:0:1,LU\n192.0.2.0/24,SE\n")
        XCTAssertEqual(db.country(forLiteral: "2001:db8:ffff::1"), "FR")
        XCTAssertEqual(db.country(forLiteral: "2001:db8:1::2"), "BE")
        XCTAssertEqual(db.country(forLiteral: "2001:db8:1::1"), "LU", "a bare address is a /128")
        XCTAssertNil(db.country(forLiteral: "2001:db9::1"))
        XCTAssertEqual(db.country(forLiteral: "::ffff:192.0.2.7"), "SE", "an IPv4-mapped address finds the IPv4 entry")
        XCTAssertNil(db.country(forLiteral: "198.51.100.1"))
    }

    func test_unknownInputsAreNil() throws {
        let db = try table("0.0.0.0/0,DE\n::/0,NL\n")
        XCTAssertNil(db.country(for: []))
        XCTAssertNil(db.country(for: [1, 2, 3]))
        XCTAssertNil(db.country(for: [UInt8](repeating: 0, count: 17)))
        XCTAssertNil(db.country(forLiteral: "example.com"))
        XCTAssertNil(db.country(forLiteral: "fe80::1%eth0"), "zones are not literals")
        XCTAssertEqual(db.country(forLiteral: "::1"), "NL")
    }

    func test_badLinesNameFileLineAndProblem() {
        let cases: [(String, Int, String)] = [
            ("10.0.0.0/8,DE\n10.0.0.0/33,NL\n", 2, "prefix length must be a number 0...32"),
            ("# x\n\n10.0.0.1/8,DE\n", 3, "bits set below the /8 prefix (did you mean 10.0.0.0/8?)"),
            ("10.0.0.0/8,ZZ\n", 1, "\"ZZ\" is not an assigned ISO 3166-1 alpha-2 country code"),
            ("10.0.0.0/8,XX\n", 1, "not an assigned"),
            ("10.0.0.0/8,DEU\n", 1, "not an assigned"),
            ("10.0.0.0/8,DE,extra\n", 1, "\"extra\" is not an AS number"),
            ("10.0.0.0/8,DE,4294967296\n", 1, "is not an AS number"),
            ("10.0.0.0/8,DE,-1\n", 1, "is not an AS number"),
            ("10.0.0.0/8,DE,AS\n", 1, "is not an AS number"),
            ("10.0.0.0/8,DE,\n", 1, "is not an AS number"),
            ("10.0.0.0/8,DE,1,2\n", 1, "expected \"CIDR,CC\""),
            ("10.0.0.0/8,DE,1\n10.0.0.0/8,DE,2\n", 2, "\"10.0.0.0/8\" was already listed as DE AS1"),
            ("10.0.0.0/8\n", 1, "expected \"CIDR,CC\""),
            ("10.0.0.0/8,DE\n10.0.0.0/8,NL\n", 2, "\"10.0.0.0/8\" was already listed as DE"),
            ("999.0.0.0/8,DE\n", 1, "is not an IPv4 or IPv6 CIDR"),
            ("example.com,DE\n", 1, "is not an IPv4 or IPv6 CIDR"),
            ("2001:db8::1/32,FR\n", 1, "bits set below the /32 prefix"),
            ("2001:db8::/129,FR\n", 1, "0...128"),
            ("10.0.0.0/-1,DE\n", 1, "0...32"),
            ("10.0.0.0/8/8,DE\n", 1, "is not an IPv4 or IPv6 CIDR"),
        ]
        for (text, line, fragment) in cases {
            guard let error = problem(text) else { XCTFail("accepted: \(text)"); continue }
            XCTAssertEqual(error.description.hasPrefix("test.csv:\(line): "), true, "\(error) for \(text)")
            XCTAssertTrue(error.description.contains(fragment), "\(error) for \(text)")
        }
    }

    func test_optionalASNColumn() throws {
        let db = try table("""
        10.101.0.0/16,IR,58224
        10.101.7.0/24,IR,as197207   # a more specific prefix of another AS
        10.102.0.0/16,CN
        10.103.0.0/16,RU,AS4294967295
        2001:db8::/32,FR,0
        """)
        XCTAssertEqual(db.country(forLiteral: "10.101.1.1"), "IR")
        XCTAssertEqual(db.asn(for: [10, 101, 1, 1]), 58224)
        XCTAssertEqual(db.asn(for: [10, 101, 7, 1]), 197207, "the longest prefix names the AS too")
        XCTAssertEqual(db.asn(for: [10, 102, 0, 2]), 0, "a line without an ASN: 0, unknown")
        XCTAssertEqual(db.asn(for: [10, 103, 0, 2]), UInt32.max)
        XCTAssertEqual(db.asn(for: IPLiteral.parse("::ffff:10.101.0.2")!), 58224, "IPv4-mapped")
        XCTAssertEqual(db.asn(for: IPLiteral.parse("2001:db8::1")!), 0)
        XCTAssertNil(db.asn(for: [192, 0, 2, 1]), "an unknown address has no ASN")
        XCTAssertNil(db.asn(for: [1, 2, 3]))
    }

    func test_sameEntryTwiceIsFine() throws {
        XCTAssertEqual(try table("10.0.0.0/8,DE\n10.0.0.0/8,de\n").count, 1)
    }

    func test_controlCharactersInErrorsAreNeutralised() {
        let error = problem("\u{1b}[31m,DE\n")
        XCTAssertNotNil(error)
        XCTAssertFalse(error?.description.contains("\u{1b}") ?? true, "\(String(describing: error))")
    }

    func test_moreThanAMillionLinesIsRefused() throws {
        // 1,000,000 comment lines load; one more line is refused, naming the line.
        let million = [UInt8](repeating: 0x0a, count: CSVGeoIP.maxLines)
        XCTAssertEqual(try CSVGeoIP(contents: million, source: "big.csv").count, 0)
        XCTAssertThrowsError(try CSVGeoIP(contents: million + Array("10.0.0.0/8,DE\n".utf8), source: "big.csv")) { error in
            XCTAssertEqual(error as? GeoIPError, .line(path: "big.csv", line: 1_000_001, problem: "more than 1000000 lines"))
        }
    }

    func test_overlongLineIsRefused() {
        let long = "10.0.0.0/8,DE # " + String(repeating: "x", count: CSVGeoIP.maxLineBytes)
        XCTAssertEqual(problem("# ok\n" + long + "\n"), .line(path: "test.csv", line: 2, problem: "line is longer than 1024 bytes"))
        let exactly = "10.0.0.0/8,DE #" + String(repeating: "x", count: CSVGeoIP.maxLineBytes - 15)
        XCTAssertNil(problem(exactly))
    }

    func test_fileErrors() throws {
        let dir = try temporaryDirectory()
        XCTAssertThrowsError(try CSVGeoIP(path: dir + "/missing.csv")) { error in
            XCTAssertTrue("\(error)".hasPrefix(dir + "/missing.csv: "), "\(error)")
        }
        XCTAssertThrowsError(try CSVGeoIP(path: dir)) { error in
            XCTAssertEqual(error as? GeoIPError, .file(path: dir, problem: "not a regular file"))
        }
        // A sparse file just over the size limit is refused by its size, without being read.
        let big = dir + "/big.csv"
        XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: big))
        try handle.truncate(atOffset: UInt64(CSVGeoIP.maxFileBytes + 1))
        try handle.close()
        XCTAssertThrowsError(try CSVGeoIP(path: big)) { error in
            XCTAssertTrue("\(error)".contains("a GeoIP text file may have at most 134217728"), "\(error)")
        }
        let good = dir + "/ok.csv"
        try "127.1.0.0/16,DE\n".write(toFile: good, atomically: true, encoding: .utf8)
        let db = try GeoIP.open(path: good)
        XCTAssertTrue(db is CSVGeoIP)
        XCTAssertEqual(db.country(forLiteral: "127.1.2.3"), "DE")
    }

    func test_ipLiteralParsesAndFormats() {
        XCTAssertEqual(IPLiteral.parse("192.0.2.1"), [192, 0, 2, 1])
        XCTAssertEqual(IPLiteral.parse("2001:db8::1")?.count, 16)
        XCTAssertNil(IPLiteral.parse(" 192.0.2.1"))
        XCTAssertNil(IPLiteral.parse("[::1]"))
        XCTAssertNil(IPLiteral.parse("1.2.3"))
        XCTAssertNil(IPLiteral.parse(String(repeating: "1", count: 100)))
        XCTAssertEqual(IPLiteral.format([10, 0, 0, 1]), "10.0.0.1")
        XCTAssertEqual(IPLiteral.format(IPLiteral.parse("2001:0db8:0:0::1") ?? []), "2001:db8::1")
        XCTAssertNil(IPLiteral.format([1, 2]))
    }
}

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "montana-b-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
