import XCTest
final class MontanaSessionTestsPlaceholder: XCTestCase { func test_placeholder() {} }
