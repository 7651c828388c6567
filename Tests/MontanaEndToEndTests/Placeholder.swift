import XCTest
final class MontanaEndToEndTestsPlaceholder: XCTestCase { func test_placeholder() {} }
