import XCTest
@testable import MontanaExit

/// Config text and resolver output are parsed without trapping, whatever they contain.
final class HostileInputTests: XCTestCase {
    func test_entryAndAddressParsersSurviveMutatedText() {
        var state: UInt64 = 0x6578_6974
        func random(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33) % bound
        }
        let alphabet = Array("0123456789abcdefABCDEF:./-*x %[]")
        let seeds = ["2001:db8::1/64", "::ffff:10.0.0.0/104", "10.0.0.0/8", "8000-8999", ".example.com", "64:ff9b::1.2.3.4"]
        for _ in 0..<20000 {
            var text = Array(seeds[random(seeds.count)])
            for _ in 0..<(1 + random(4)) {
                let i = random(text.count + 1)
                switch random(3) {
                case 0 where i < text.count: text[i] = alphabet[random(alphabet.count)]
                case 1 where i < text.count: text.remove(at: i)
                default: text.insert(alphabet[random(alphabet.count)], at: i)
                }
            }
            let string = String(text)
            _ = try? ExitPolicyEntry.parse(string)
            if let address = IPAddress(string) {
                XCTAssertEqual(IPAddress(address.description), address, string)
            }
        }
    }
}
