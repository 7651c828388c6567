import MontanaWire
import XCTest

final class WireCodecTests: XCTestCase {
    let nodeID = [UInt8](repeating: 0xab, count: 32)

    func test_uvarintRoundTripsAndRejectsOverlongEncodings() throws {
        for v: UInt64 in [0, 1, 127, 128, 300, 16384, UInt64(UInt32.max), UInt64.max] {
            let e = UVarint.encode(v)
            XCTAssertEqual(try UVarint.decode(e)?.value, v)
            XCTAssertEqual(try UVarint.decode(e)?.length, e.count)
        }
        XCTAssertNil(try UVarint.decode([0x80, 0x80]))
        XCTAssertThrowsError(try UVarint.decode([UInt8](repeating: 0xff, count: 10) + [0x01]))
        XCTAssertThrowsError(try UVarint.decode([UInt8](repeating: 0xff, count: 9) + [0x02]))
    }

    func test_relayMessagesKeepTheLastValueAndSkipUnknownFields() throws {
        var w = ProtoWriter()
        w.varint(1, 1)
        w.varint(99, 5)                    // unknown
        w.lengthDelimited(2, RelayPeerBytes.make([1, 2, 3]))
        w.varint(1, 2)                     // last type wins
        w.fixed64(100, 42)
        let m = try HopMessage.decode(w.bytes)
        XCTAssertEqual(m.type, .status)
        XCTAssertEqual(m.peer?.id, [1, 2, 3])
        XCTAssertEqual(m.ext.ts, 42)
    }

    func test_relayMessagesEmitTypeAlwaysAndOptionalFieldsOnlyWhenSet() {
        XCTAssertEqual(HopMessage(type: .reserve).encode(), [0x08, 0x00])
        XCTAssertEqual(StopMessage(type: .status, status: .ok).encode(), [0x08, 0x01, 0x20, 0x64])
        XCTAssertEqual(HopMessage(type: .status, status: .ok).encode(), [0x08, 0x02, 0x28, 0x64])
    }

    func test_relayMessagesRejectBadValues() {
        XCTAssertThrowsError(try HopMessage.decode([]))                        // no type
        XCTAssertThrowsError(try HopMessage.decode([0x08, 0x07]))              // unknown type
        XCTAssertThrowsError(try HopMessage.decode([0x08, 0x01, 0x28, 0x05]))  // unknown status
        XCTAssertThrowsError(try HopMessage.decode([0x08, 0x01, 0x12, 0x05]))  // truncated peer
        XCTAssertThrowsError(try HopMessage.decode([0x08, 0x01, 0x1b]))        // group wire type
        XCTAssertThrowsError(try StopMessage.decode([0x08, 0x00, 0xb0, 0x06, 0x09])) // purpose 9
    }

    func test_directoryEntryIs39BytesWithAssignedCountriesOnly() throws {
        let entry = try EgressDirectoryEntry(exitNodeID: nodeID, countryCode: "NL", capacityClass: .high, advertisedWindow: 0x01020304)
        let bytes = entry.encode()
        XCTAssertEqual(bytes.count, 39)
        XCTAssertEqual(Array(bytes[32...]), [0x4e, 0x4c, 0x02, 0x04, 0x03, 0x02, 0x01])
        XCTAssertEqual(try EgressDirectoryEntry.decode(bytes), entry)
        for cc in ["ZZ", "XK", "UK", "nl", "N1"] {
            XCTAssertThrowsError(try EgressDirectoryEntry(exitNodeID: nodeID, countryCode: cc, capacityClass: .high, advertisedWindow: 0), cc)
        }
        XCTAssertTrue(entry.isFresh(currentWindow: 0x01020304 + 7))
        XCTAssertFalse(entry.isFresh(currentWindow: 0x01020304 + 8))
    }

    func test_advertValidatesRatioStalenessAndProfile() throws {
        let a = try ReachabilityAdvert(countryCode: "ZZ", asn: 0, target: nodeID, profile: 3, reachableNum: 2, reachableDen: 2, observedWindow: 100)
        XCTAssertEqual(a.encode().count, 47)
        XCTAssertEqual(try ReachabilityAdvert.decode(a.encode(), currentWindow: 107), a)
        XCTAssertThrowsError(try ReachabilityAdvert.decode(a.encode(), currentWindow: 108))
        XCTAssertThrowsError(try ReachabilityAdvert(countryCode: "DE", asn: 0, target: nodeID, profile: 0, reachableNum: 3, reachableDen: 2, observedWindow: 0))
        XCTAssertThrowsError(try ReachabilityAdvert(countryCode: "DE", asn: 0, target: nodeID, profile: 0, reachableNum: 0, reachableDen: 0, observedWindow: 0))
        XCTAssertThrowsError(try ReachabilityAdvert(countryCode: "DE", asn: 0, target: nodeID, profile: 5, reachableNum: 0, reachableDen: 1, observedWindow: 0))
    }

    func test_egressOpenEncodesPortBigEndianAndStreamIdLittleEndian() throws {
        let open = EgressMessage.open(EgressOpen(streamID: 0x01020304, transport: .tcp, address: .host("a.example"), port: 0x1f90))
        let bytes = try open.encode()
        XCTAssertEqual(Array(bytes[0..<5]), [0x02, 0x04, 0x03, 0x02, 0x01])
        XCTAssertEqual(Array(bytes.suffix(2)), [0x1f, 0x90])
        XCTAssertEqual(try EgressMessage.decode(bytes), open)
    }

    /// The crash from issue 6 item 7: a 400-byte host name reached `UInt8(bytes.count)`.
    func test_egressOpenWithAHostNameOver255BytesThrowsInsteadOfTrapping() throws {
        func open(_ host: String) -> EgressMessage {
            .open(EgressOpen(streamID: 1, transport: .tcp, address: .host(host), port: 443))
        }
        let longest = String(repeating: "a", count: EgressOpen.maxHostNameLength)
        let bytes = try open(longest).encode()
        XCTAssertEqual(bytes[7], 255, "host_len of the longest name the wire carries")
        XCTAssertEqual(try EgressMessage.decode(bytes), open(longest))
        for length in [256, 400, 70_000] {
            XCTAssertThrowsError(try open(String(repeating: "a", count: length)).encode(), "\(length) bytes") { error in
                XCTAssertEqual(error as? WireError, .tooLong(field: "EgressOpen host name", length: length, limit: 255))
            }
        }
        // Multi-byte UTF-8 counts bytes, not characters: 128 × "é" is 256 bytes.
        XCTAssertThrowsError(try open(String(repeating: "é", count: 128)).encode())
        XCTAssertThrowsError(try open("").encode())
        XCTAssertThrowsError(try open("a b").encode())
        XCTAssertThrowsError(try EgressAddress.host(String(repeating: "a", count: 256)).validate())
        XCTAssertNoThrow(try EgressAddress.host(longest).validate())
    }

    func test_egressEncoderRefusesWrongAddressLengthsAndOversizedDataWithoutTrapping() throws {
        for address: EgressAddress in [.ipv4([1, 2, 3]), .ipv4([1, 2, 3, 4, 5]), .ipv6([UInt8](repeating: 0, count: 15)), .ipv6([])] {
            XCTAssertThrowsError(try EgressMessage.open(EgressOpen(streamID: 1, transport: .udp, address: address, port: 53)).encode(),
                                 "\(address)")
            _ = address.description  // must not index past a short IPv6 array
        }
        XCTAssertEqual(EgressAddress.ipv6([1]).description, "invalid IPv6 address (1 bytes)")
        let maximum = [UInt8](repeating: 7, count: EgressMessage.maxPayload)
        XCTAssertEqual(try EgressMessage.data(streamID: 2, payload: maximum).encode().count, 5 + EgressMessage.maxPayload)
        XCTAssertThrowsError(try EgressMessage.data(streamID: 2, payload: maximum + [0]).encode()) { error in
            XCTAssertEqual(error as? WireError, .tooLong(field: "EgressData payload", length: 65520, limit: 65519))
        }
    }

    func test_egressAuthLayoutAndOptionalPass() throws {
        let auth = EgressAuth(accountPublicKey: [UInt8](repeating: 1, count: 1952), nonce: [UInt8](repeating: 2, count: 32),
                              proof: [UInt8](repeating: 3, count: 3309), signedPass: [9, 9, 9])
        let bytes = auth.encode()
        XCTAssertEqual(bytes.count, 5295 + 2 + 3)
        XCTAssertEqual(Array(bytes[5295..<5297]), [3, 0])
        XCTAssertEqual(try EgressAuth.decode(bytes), auth)
        XCTAssertThrowsError(try EgressAuth.decode(Array(bytes.dropLast())))
        XCTAssertThrowsError(try EgressAuth.decode([0x01, 0x02] + bytes.dropFirst(2)))
    }

    func test_directoryRecordRoundTripsAndRejectsInvalidFields() throws {
        let entry = try EgressDirectoryEntry(exitNodeID: nodeID, countryCode: "DE", capacityClass: .standard, advertisedWindow: 7)
        let record = DirectoryRecord(entry: entry, identityPublicKey: [UInt8](repeating: 1, count: 1952), kemPublicKey: [UInt8](repeating: 2, count: 1216),
                                     roles: [.front, .exit], endpoints: [Endpoint(profile: 3, host: "198.51.100.1", port: 9443, params: "cert=abc&iat-mode=0")],
                                     issuedAt: 10, expiresAt: 20, keyMode: .own,
                                     ownT1: T1Params(x25519PublicKey: [UInt8](repeating: 5, count: 32), shortIDs: [[1, 2]], serverName: "www.example.com", cover: "www.example.com:443"),
                                     load: 40, operatorLabel: "op")
        XCTAssertEqual(try DirectoryRecord.decode(record.encode()), record)
        var noT1 = record
        noT1.ownT1 = nil
        XCTAssertThrowsError(try DirectoryRecord.decode(noT1.encode()))
        var backwards = record
        backwards.expiresAt = 5
        XCTAssertThrowsError(try DirectoryRecord.decode(backwards.encode()))
        var withdrawal = record
        withdrawal.expiresAt = withdrawal.issuedAt
        XCTAssertTrue(try DirectoryRecord.decode(withdrawal.encode()).isWithdrawal)
    }

    func test_tlvListsRoundTripAndRejectTruncation() throws {
        let items = [TLV(type: 1, value: [1, 0, 0, 0]), TLV(type: 0x7f, value: [])]
        XCTAssertEqual(try TLV.decode(TLV.encode(items)), items)
        XCTAssertThrowsError(try TLV.decode([1, 5, 0, 1]))
    }
}

enum RelayPeerBytes {
    static func make(_ id: [UInt8]) -> [UInt8] {
        var w = ProtoWriter()
        w.lengthDelimited(1, id)
        return w.bytes
    }
}
