import XCTest
final class MontanaNodeTestsPlaceholder: XCTestCase { func test_placeholder() {} }
