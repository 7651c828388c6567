import XCTest
final class MontanaCryptoTestsPlaceholder: XCTestCase { func test_placeholder() {} }
