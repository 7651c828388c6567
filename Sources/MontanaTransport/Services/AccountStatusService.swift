import MontanaCrypto
import MontanaSession
import MontanaWire
import NIOCore

/// `/montana/account/1.0.0` on an exit session: what this exit knows of the session's account,
/// so a client can tell its user why opens are refused (status 3 says only "rate-limited").
/// One length-prefixed message, then FIN:
/// `AccountStatus { used_bytes(1); quota_bytes(2) (0 = none); not_after(3) (0 = no pass); state(4): 0 ok, 1 quota used up }`.
public struct AccountStatusService: StreamService {
    public static let protocolID = "/montana/account/1.0.0"
    public let protocolName = AccountStatusService.protocolID
    let account: AdmittedAccount
    let usage: (@Sendable ([UInt8]) -> UInt64)?

    public init(account: AdmittedAccount, usage: (@Sendable ([UInt8]) -> UInt64)?) {
        self.account = account
        self.usage = usage
    }

    public func serve(_ stream: MuxStream, session: MuxHandler) {
        let used = usage?(account.accountID) ?? 0
        let status = AccountStatus(usedBytes: used, quotaBytes: account.pass?.quotaBytes ?? 0, notAfter: account.pass?.notAfter ?? 0)
        stream.onData = { [weak stream] b in stream?.consumed(b.readableBytes) }
        stream.write(LengthPrefixedDecoder.frame(status.encode()))
        stream.closeWrite()
        stream.startReading()
    }
}

public struct AccountStatus: Equatable, Sendable {
    public var usedBytes: UInt64
    public var quotaBytes: UInt64
    public var notAfter: UInt64

    public init(usedBytes: UInt64, quotaBytes: UInt64, notAfter: UInt64) {
        self.usedBytes = usedBytes
        self.quotaBytes = quotaBytes
        self.notAfter = notAfter
    }

    public var quotaUsedUp: Bool { quotaBytes > 0 && usedBytes >= quotaBytes }

    public func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1, usedBytes)
        w.varint(2, quotaBytes)
        w.varint(3, notAfter)
        w.varint(4, quotaUsedUp ? 1 : 0)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> AccountStatus {
        var s = AccountStatus(usedBytes: 0, quotaBytes: 0, notAfter: 0)
        try ProtoReader.forEachField(bytes) { (field, value) throws(WireError) in
            switch field {
            case 1: s.usedBytes = try value.asVarint("used_bytes")
            case 2: s.quotaBytes = try value.asVarint("quota_bytes")
            case 3: s.notAfter = try value.asVarint("not_after")
            default: break
            }
        }
        return s
    }
}
