import XCTest
final class MontanaWireTestsPlaceholder: XCTestCase { func test_placeholder() {} }
