import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaDirectory
import MontanaNode
import MontanaTransport
import MontanaWire

struct PassCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pass",
        abstract: "Issue account passes signed by the alliance's pass issuer key.",
        discussion: """
        A pass admits one account (by its account id) to the alliance's exits for a number of days. \
        Give the file to the account's user (client.pass in client.toml) or put it in a subscription.
        """,
        subcommands: [PassIssue.self]
    )
}

struct PassIssue: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "issue", abstract: "Issue a pass for an account.")

    /// 2^34 GiB is 2^64 bytes: the largest quota a u64 can hold.
    static let maxQuotaGiB: UInt64 = (1 << 34) - 1

    @Option(help: "The alliance's secret file (alliance.secret).")
    var secret: String

    @Option(help: "The alliance's public file; default: alliance.json beside the secret.")
    var alliance: String?

    @Option(help: "The account: its account id (64 hex digits) or its account.pub.json.")
    var account: String

    @Option(help: "Days the pass is valid (1-3660), from now.")
    var days: Int

    @Option(name: .customLong("quota-gib"), help: "Traffic quota in GiB (0 = none; exits may ignore it).")
    var quotaGiB: UInt64 = 0

    @Option(help: "Where to write the pass file.")
    var out: String

    func run() throws {
        guard PassFile.days.contains(days) else {
            throw ValidationError("--days: must be \(PassFile.days.lowerBound)-\(PassFile.days.upperBound), got \(days)")
        }
        guard quotaGiB <= Self.maxQuotaGiB else { throw ValidationError("--quota-gib: at most \(Self.maxQuotaGiB)") }
        let accountID: [UInt8]
        if let hex = Hex.decode(account), hex.count == 32 {
            accountID = hex
        } else if FileManager.default.fileExists(atPath: account) {
            accountID = try PublicKeyFiles.accountID(from: account)
        } else {
            throw ValidationError("--account: \(account) is neither an account id (64 hex digits) nor an account.pub.json file")
        }
        let (document, allianceSecret) = try AllianceFiles.load(secret: secret, alliance: alliance)
        let pass: PassFile
        do {
            pass = try PassFile.issue(secret: allianceSecret, accountID: accountID, days: days, quotaBytes: quotaGiB << 30, now: WallClock.now())
            try pass.write(to: out)
        } catch {
            throw ValidationError("\(error)")
        }
        print("pass for account \(Hex.encode(accountID))")
        print("  alliance:  \(document.name)")
        print("  issuer:    \(NodeID(identityPublicKey: allianceSecret.passIssuerKey.publicKey).short)")
        print("  valid:     \(Self.date(pass.notBefore)) to \(Self.date(pass.notAfter)) (\(days) days)")
        print("  quota:     \(quotaGiB == 0 ? "none" : "\(quotaGiB) GiB")")
        print("wrote \(out)")
    }

    static func date(_ unix: UInt64) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
    }
}
