import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaWire
import XCTest
@testable import MontanaNode

/// `node.alliance`, `node.endorsement` and `[directory]`: a member joins with files it was given,
/// and every mistake in them stops the node at start naming the file, the key and the problem.
final class DirectorySettingsTests: XCTestCase {
    private var fixture: ConfigFixture!
    private var alliance: AllianceDocument!
    private var secret: AllianceSecret!

    override func setUpWithError() throws {
        fixture = try ConfigFixture()
        (alliance, secret) = try Alliance.create(name: "Config test", open: false)
        try alliance.write(to: fixture.directory + "/alliance.json")
    }

    private func endorse(_ id: NodeID, operator label: String = "Example Ops", name: String = "endorsement.json",
                         secret: AllianceSecret? = nil, alliance: AllianceDocument? = nil) throws {
        try EndorsementFile.make(endorsing: id, operator: label, alliance: alliance ?? self.alliance, secret: secret ?? self.secret,
                                 now: UInt64(Date().timeIntervalSince1970)).write(to: fixture.directory + "/" + name)
    }

    private func memberText(extra: String = "") -> String {
        fixture.nodeText(extra: extra, replacing: [("alliance = \"00112233445566778899aabbccddeeff\"",
                                                    "alliance = \"alliance.json\"\nendorsement = \"endorsement.json\"")])
    }

    private func link(_ alliance: AllianceDocument) throws -> String {
        MemberLink(alliance: alliance.uuidBytes, host: "198.51.100.9", port: 7443, nodeID: try IdentityKey.generate().nodeID,
                   kemPublicKey: try KEMKey.generate().publicKey).text
    }

    func test_anEndorsedMemberLoadsItsAllianceBootstrapAndGeoIP() throws {
        try endorse(fixture.identity.nodeID)
        let bootstrap = try link(alliance)
        try "127.1.0.0/16,DE\n".write(toFile: fixture.directory + "/geo.csv", atomically: true, encoding: .utf8)
        let config = try fixture.parseNode(memberText(extra: "\n[directory]\nbootstrap = [\"\(bootstrap)\"]\ngeoip = \"geo.csv\"\nfanout = 5\n"))
        let directory = try XCTUnwrap(config.directory)
        XCTAssertEqual(directory.alliance, alliance)
        XCTAssertEqual(config.alliance, alliance.uuidBytes, "prefaces carry the alliance's UUID")
        XCTAssertEqual(directory.bootstrap.map(\.text), [bootstrap])
        XCTAssertEqual(directory.geoipPath, fixture.directory + "/geo.csv")
        XCTAssertEqual(directory.fanout, 5)
        XCTAssertEqual(directory.databasePath, fixture.directory + "/directory.sqlite")
        XCTAssertNotNil(directory.endorsement)
    }

    func test_endorsementOfAnotherNodeIsRefusedNamingTheKey() throws {
        try endorse(try IdentityKey.generate().nodeID)
        let error = try XCTUnwrap(fixture.nodeError(memberText()))
        XCTAssertTrue("\(error)".contains("node.endorsement"), "\(error)")
        XCTAssertTrue("\(error)".contains("not this node"), "\(error)")
    }

    func test_endorsementForAnotherOperatorLabelIsRefused() throws {
        try endorse(fixture.identity.nodeID, operator: "Someone Else")
        let error = try XCTUnwrap(fixture.nodeError(memberText()))
        XCTAssertTrue("\(error)".contains("node.endorsement") && "\(error)".contains("Someone Else"), "\(error)")
    }

    func test_endorsementByAnotherAllianceIsRefused() throws {
        let (other, otherSecret) = try Alliance.create(name: "Other", open: false)
        try endorse(fixture.identity.nodeID, secret: otherSecret, alliance: other)
        let error = try XCTUnwrap(fixture.nodeError(memberText()))
        XCTAssertTrue("\(error)".contains("node.endorsement") && "\(error)".contains("membership key"), "\(error)")
    }

    func test_aClosedAllianceRequiresAnEndorsement() throws {
        let text = fixture.nodeText(replacing: [("alliance = \"00112233445566778899aabbccddeeff\"", "alliance = \"alliance.json\"")])
        let error = try XCTUnwrap(fixture.nodeError(text))
        XCTAssertTrue("\(error)".contains("node.endorsement") && "\(error)".contains("required"), "\(error)")
    }

    func test_aBootstrapLinkOfAnotherAllianceIsRefusedNamingTheEntry() throws {
        try endorse(fixture.identity.nodeID)
        let (other, _) = try Alliance.create(name: "Other", open: false)
        let error = try XCTUnwrap(fixture.nodeError(memberText(extra: "\n[directory]\nbootstrap = [\"\(try link(other))\"]\n")))
        XCTAssertTrue("\(error)".contains("directory.bootstrap") && "\(error)".contains("entry 1") && "\(error)".contains("another alliance"), "\(error)")
    }

    func test_aMalformedBootstrapLinkIsRefusedNamingTheEntry() throws {
        try endorse(fixture.identity.nodeID)
        let error = try XCTUnwrap(fixture.nodeError(memberText(extra: "\n[directory]\nbootstrap = [\"montana://nonsense\"]\n")))
        XCTAssertTrue("\(error)".contains("directory.bootstrap") && "\(error)".contains("entry 1"), "\(error)")
    }

    func test_aMissingAllianceFileNamesIt() {
        let text = fixture.nodeText(replacing: [("alliance = \"00112233445566778899aabbccddeeff\"", "alliance = \"absent.json\"")])
        let error = fixture.nodeError(text)
        XCTAssertNotNil(error)
        XCTAssertTrue("\(error!)".contains("node.alliance") && "\(error!)".contains("absent.json"), "\(error!)")
    }

    func test_aMemberMustNameItsCountryEvenAsAFront() throws {
        try endorse(fixture.identity.nodeID)
        let text = memberText().replacingOccurrences(of: "roles = [\"front\", \"exit\"]\ncountry = \"DE\"", with: "roles = [\"front\"]")
            .replacingOccurrences(of: "\n[exit]", with: "\n[unused_exit]")
        // Drop the [exit] section entirely for a front.
        let front = text.components(separatedBy: "\n[unused_exit]").first! + "\n[log]\nlevel = \"debug\"\n"
        let error = try XCTUnwrap(fixture.nodeError(front))
        XCTAssertTrue("\(error)".contains("node.country"), "\(error)")
    }

    func test_passAdmissionTrustsTheAlliancesIssuersWhenNoneAreListed() throws {
        try endorse(fixture.identity.nodeID)
        let text = memberText().replacingOccurrences(of: "admission = \"allow-list\"", with: "admission = \"pass\"")
        let config = try fixture.parseNode(text)
        guard case .pass(let issuers, _)? = config.exit?.admission else { return XCTFail("admission is pass") }
        XCTAssertEqual(issuers, alliance.passIssuerKeys)
    }
}
