import XCTest
final class MontanaClientTestsPlaceholder: XCTestCase { func test_placeholder() {} }
