import XCTest
final class MontanaExitTestsPlaceholder: XCTestCase { func test_placeholder() {} }
