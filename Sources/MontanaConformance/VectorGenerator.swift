import Crypto
import Foundation
import MontanaCrypto
import MontanaWire

/// Generates our conformance vectors in the shared schema (the one `independent-v1.json` uses,
/// plus directory entries, adverts and a signed record). Seeds are fixed; X-Wing encapsulation
/// and ML-DSA signing are randomised, so each run records new ciphertexts and signatures —
/// regenerating the committed file is a deliberate act (`montana vectors --out docs/vectors`).
public enum VectorGenerator {
    static func seed(_ byte: UInt8, _ count: Int = 32) -> [UInt8] { [UInt8](repeating: byte, count: count) }
    static let unixSeconds: UInt64 = 1_800_000_000
    static let alliance: [UInt8] = Array(0x10...0x1f)

    public static func generate() throws -> [String: Any] {
        var out: [String: Any] = [
            "format": "montana-alliance conformance vectors",
            "spec": "docs/PROTOCOL.md v1",
            "generator": "montana vectors (Swift, swift-crypto)",
            "encoding": "all byte strings are lowercase hex; integers are decimal",
            "interpretation": [
                "little-endian everywhere except: handshake/frame u16 length prefixes, transport AEAD nonces, dest_port, yamux headers",
                "EgressAuth nonce binds h right before EncryptAndHash(payload_i)",
                "preface response block = kind u8 || u16 LE len || protobuf || zero padding to 64",
                "ACK body and observed-address port are little-endian",
            ],
        ]
        let kem = try KEMKey(seed: seed(0x42))
        let (kemCT, kemSS) = try KEMKey.encapsulate(to: kem.publicKey)
        out["xwing_kat"] = [
            "seed": Hex.encode(kem.seed), "pk": Hex.encode(kem.publicKey), "pk_sha256": Hex.encode(Digests.sha256(kem.publicKey)),
            "encap": ["ct": Hex.encode(kemCT), "ss": Hex.encode(kemSS)],
        ]
        let dsa = try IdentityKey(seed: seed(0x77))
        let dsaMessage = Array("montana known answer".utf8)
        out["ml_dsa_kat"] = [
            "seed": Hex.encode(dsa.seed), "pk_sha256": Hex.encode(Digests.sha256(dsa.publicKey)),
            "message": Hex.encode(dsaMessage), "signature": Hex.encode(try dsa.sign(dsaMessage)),
        ]
        let node = try IdentityKey(seed: seed(0x21))
        let account = try IdentityKey(seed: seed(0x31))
        out["ids"] = [
            "node": ["identity_seed": Hex.encode(node.seed), "identity_pk": Hex.encode(node.publicKey),
                     "identity_pk_sha256": Hex.encode(Digests.sha256(node.publicKey)),
                     "node_id": node.nodeID.hex, "node_multihash": Hex.encode(node.nodeID.multihash)],
            "account": ["account_seed": Hex.encode(account.seed), "account_pk": Hex.encode(account.publicKey),
                        "account_pk_sha256": Hex.encode(Digests.sha256(account.publicKey)),
                        "account_id": Hex.encode(account.accountID), "account_id_preimage_prefix": Hex.encode(Array("mt-account".utf8) + [1, 0])],
            "time": ["unix_seconds": unixSeconds, "window_W": TimeWindow.window(unixSeconds: unixSeconds),
                     "window_slot": TimeWindow.slot(unixSeconds: unixSeconds)],
        ]
        let hop = try KEMKey(seed: seed(0x12))
        let hopMessage = HopMessage(type: .connect, peer: RelayPeer(id: node.nodeID.multihash),
                                    ext: RelayExtension(ts: unixSeconds, alliance: alliance, purpose: .session))
        out["preface_open"] = try prefaceVector(hop: hop, message: .hop(hopMessage),
                                                response: .hop(HopMessage(type: .status, status: .ok)))
        let stopMessage = StopMessage(type: .connect, peer: RelayPeer(id: [0x00, 0x10] + Array(0x40...0x4f)),
                                      ext: RelayExtension(ts: unixSeconds, purpose: .session))
        out["preface_open_stop"] = try prefaceVector(hop: hop, message: .stop(stopMessage),
                                                     response: .stop(StopMessage(type: .status, status: .ok)))
        let replayed = Hex.decode((out["preface_open"] as! [String: Any])["preface"] as! String)!
        out["preface_negative"] = try negativePrefaces(hop: hop, valid: hopMessage, replayed: replayed)
        let noise = try noiseVector(initiatorKey: account, responderKey: node)
        out["noise_pq_xx"] = noise
        out["transport_frames"] = try frames(key: Hex.decode(noise["k_i2r"] as! String)!)
        out["egress_messages"] = egressMessages()
        out["directory_entry"] = try directoryEntries(node: node)
        out["reachability_advert"] = try adverts(target: node.nodeID)
        out["signed_record"] = try signedRecord(node: node, kem: hop)
        out["t1"] = try t1Vector()
        return out
    }

    /// T1 (PROTOCOL.md 2.2): the token, the TLS 1.3 key schedule for each suite, the front's mask,
    /// the c0/s0 stage and the T1 traffic keys, all deterministic from fixed inputs.
    static func t1Vector() throws -> [String: Any] {
        let client = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: seed(0x71))
        let front = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: seed(0x72))
        let random = seed(0x73), psk = Array(0x10...0x1f).map(UInt8.init), aad = seed(0x74, 300), shortID: [UInt8] = [0x5e, 0x1f]
        let token = try T1Token.seal(client: client, frontPublic: Array(front.publicKey.rawRepresentation), psk: psk, random: random,
                                     unixSeconds: UInt32(unixSeconds), shortID: shortID, aad: aad)
        var schedules: [[String: Any]] = []
        for suite in [TLS13.Suite.aes128GCMSHA256, .aes256GCMSHA384, .chacha20Poly1305SHA256] {
            let schedule = TLS13.Schedule(suite: suite, sharedSecret: seed(0x75))
            let helloHash = suite.hash(seed(0x76, 64)), finishedHash = suite.hash(seed(0x77, 64))
            let hs = schedule.handshakeTraffic(helloHash: helloHash)
            let ap = schedule.applicationTraffic(serverFinishedHash: finishedHash)
            var cipher = TLS13.RecordCipher(suite: suite, trafficSecret: hs.server)
            schedules.append([
                "suite": Int(suite.rawValue), "shared_secret": Hex.encode(seed(0x75)), "hello_hash": Hex.encode(helloHash),
                "server_finished_hash": Hex.encode(finishedHash),
                "client_handshake_traffic": Hex.encode(hs.client), "server_handshake_traffic": Hex.encode(hs.server),
                "client_application_traffic": Hex.encode(ap.client), "server_application_traffic": Hex.encode(ap.server),
                "server_finished_verify": Hex.encode(schedule.finished(baseKey: hs.server, transcriptHash: helloHash)),
                "record_plaintext": Hex.encode(Array("montana".utf8)), "record_type": 22, "record_padding": 3,
                "record_sealed_seq0": Hex.encode(try cipher.seal(Array("montana".utf8), type: 22, padding: 3)),
            ])
        }
        let authKey = token.authKey, serverRandom = seed(0x78), finished = seed(0x79, 53)
        var (c0, s0) = T1Switch.stage0(authKey: authKey, serverRandom: serverRandom, clientFinishedRecord: finished)
        let reply = [T1Switch.innerVersion] + seed(0x7a) + seed(0x7b, 1088)
        let transcript = seed(0x7c, 200)
        var (cap, sap) = T1Switch.traffic(authKey: authKey, transcript: transcript, x25519: seed(0x7d), mlkem: seed(0x7e))
        return [
            "token": ["client_x25519_private": Hex.encode(seed(0x71)), "front_x25519_private": Hex.encode(seed(0x72)),
                      "front_x25519_public": Hex.encode(Array(front.publicKey.rawRepresentation)),
                      "client_x25519_public": Hex.encode(Array(client.publicKey.rawRepresentation)),
                      "random": Hex.encode(random), "psk": Hex.encode(psk), "unix_seconds": unixSeconds, "short_id": Hex.encode(shortID),
                      "aad": Hex.encode(aad), "session_id": Hex.encode(token.sessionID), "k_auth": Hex.encode(authKey)],
            "tls13_schedule": schedules,
            "switch": ["k_auth": Hex.encode(authKey), "server_random": Hex.encode(serverRandom),
                       "mask": Hex.encode(T1Switch.mask(authKey: authKey, serverRandom: serverRandom)),
                       "client_finished_record": Hex.encode(finished),
                       "inner_hello": "0100", "inner_hello_padding": 57,
                       "inner_hello_record": Hex.encode(try c0.seal([T1Switch.innerVersion, 0], type: 23, padding: 57)),
                       "inner_reply": Hex.encode(reply), "inner_reply_record": Hex.encode(try s0.seal(reply, type: 23)),
                       "transcript": Hex.encode(transcript), "x25519_secret": Hex.encode(seed(0x7d)), "mlkem_secret": Hex.encode(seed(0x7e)),
                       "carrier_plaintext": Hex.encode(Array("carrier bytes".utf8)),
                       "client_frame_seq0": Hex.encode(try cap.seal(Array("carrier bytes".utf8), type: 23)),
                       "server_frame_seq0": Hex.encode(try sap.seal(Array("carrier bytes".utf8), type: 23))],
        ]
    }

    public static func write(to directory: String) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: try generate(), options: [.prettyPrinted, .sortedKeys])
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent("montana-v1.json")
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    static func prefaceVector(hop: KEMKey, message: Preface.Message, response: Preface.Message) throws -> [String: Any] {
        let sealed = try Preface.seal(message, to: hop.publicKey)
        let ct = Array(sealed.bytes.prefix(KEMKey.ciphertextSize))
        return [
            "hop_kem_seed": Hex.encode(hop.seed), "hop_kem_pk_sha256": Hex.encode(Digests.sha256(hop.publicKey)),
            "kem_ct": Hex.encode(ct), "ss": Hex.encode(try hop.decapsulate(ct)),
            "hkdf": ["salt": Hex.encode(Array("montana-preface-v1".utf8)), "info": "= kem_ct", "L": 64],
            "k_req": Hex.encode(sealed.keys.requestKey), "k_resp": Hex.encode(sealed.keys.responseKey),
            "message_protobuf": Hex.encode(message.encode()),
            "preface": Hex.encode(sealed.bytes), "preface_sha256": Hex.encode(Digests.sha256(sealed.bytes)),
            "response_protobuf": Hex.encode(response.encode()),
            "response": Hex.encode(try Preface.sealResponse(response, keys: sealed.keys)),
        ]
    }

    static func negativePrefaces(hop: KEMKey, valid: HopMessage, replayed: [UInt8]) throws -> [String: Any] {
        func sealRaw(kind: UInt8, body: [UInt8], declaredLength: Int? = nil) throws -> [UInt8] {
            var block: [UInt8] = [kind]
            block.appendLE(UInt16(declaredLength ?? body.count))
            block += body
            block += [UInt8](repeating: 0, count: Preface.blockSize - block.count)
            return try Preface.sealRawBlock(block, to: hop.publicKey)
        }
        var cases: [[String: Any]] = []
        func add(_ label: String, _ preface: [UInt8], _ reason: String) {
            cases.append(["case": label, "preface": Hex.encode(preface), "expect_reason": reason])
        }
        let good = try Preface.seal(.hop(valid), to: hop.publicKey).bytes
        var flipped = good; flipped[1500] ^= 0x01
        add("sealed part has one flipped bit", flipped, "does_not_open")
        var flippedCT = good; flippedCT[10] ^= 0x80
        add("kem_ct has one flipped bit (implicit rejection -> AEAD fails)", flippedCT, "does_not_open")
        var stale = valid; stale.ext.ts = unixSeconds - 121
        add("ts = now - 121", try Preface.seal(.hop(stale), to: hop.publicKey).bytes, "stale_ts")
        var future = valid; future.ext.ts = unixSeconds + 121
        add("ts = now + 121", try Preface.seal(.hop(future), to: hop.publicKey).bytes, "stale_ts")
        var noTS = valid; noTS.ext.ts = nil
        add("no ts field", try Preface.seal(.hop(noTS), to: hop.publicKey).bytes, "no_ts")
        add("block kind 3", try sealRaw(kind: 3, body: valid.encode()), "bad_kind")
        add("block len 494 (> 493)", try sealRaw(kind: 1, body: valid.encode(), declaredLength: 494), "bad_length")
        add("block with undecodable protobuf", try sealRaw(kind: 1, body: [0x0a, 0xff, 0x01]), "undecodable")
        add("truncated preface (1631 bytes)", Array(good.prefix(1631)), "size")
        add("replay of preface_open.preface (a second time within 240 s)", replayed, "replay")
        return ["hop_kem_seed": Hex.encode(hop.seed), "now": unixSeconds,
                "expect": "the hop sends no byte; it reads and discards up to a random 1632..16384 bytes or 10..60 s, then closes",
                "cases": cases]
    }

    static func noiseVector(initiatorKey: IdentityKey, responderKey: IdentityKey) throws -> [String: Any] {
        let eISeed = seed(0xe1), eRSeed = seed(0xe2)
        let initiatorEntropy = SeededEntropy(seed: eISeed), responderEntropy = SeededEntropy(seed: eRSeed)
        var initiator = NoiseInitiator(identity: initiatorKey, expectedResponder: responderKey.nodeID, entropy: initiatorEntropy)
        var responder = NoiseResponder(identity: responderKey, entropy: responderEntropy)
        let payloadR = TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0)))])
        let msg1 = try initiator.message1()
        try responder.readMessage1(msg1)
        let msg2 = try responder.message2(payload: payloadR)
        try initiator.readMessage2(msg2)
        var auth: EgressAuth?
        var binding: [UInt8] = []
        let msg3 = try initiator.message3 { h in
            binding = h
            let a = try EgressAuthProof.build(account: initiatorKey, exit: responderKey.nodeID, bindingHash: h, now: unixSeconds)
            auth = a
            return TLV.encode([TLV(type: PayloadTLV.features, value: [UInt8].le(UInt32(0))),
                               TLV(type: PayloadTLV.egressAuth, value: a.encode())])
        }
        let peer = try responder.readMessage3(msg3)
        guard let keys = initiator.keys, let auth else { throw VectorError.malformed("handshake did not complete") }
        // Recover the recorded randomness from the messages themselves.
        var r2 = ByteReader(msg2)
        let eR = try r2.readBytes(KEMKey.publicKeySize)
        let ctI = try r2.readBytes(KEMKey.ciphertextSize)
        let ctR = Array(msg3.prefix(KEMKey.ciphertextSize))
        let sigR = responderEntropy.signatures.last ?? []
        let sigI = initiatorEntropy.signatures.last ?? []
        let steps = initiator.transcriptHashes.map { ["h": Hex.encode($0)] }
        return [
            "protocol_name": NoisePQ.protocolName, "prologue_mixhash": NoisePQ.prologue,
            "seeds": ["initiator_identity_seed": Hex.encode(initiatorKey.seed), "responder_identity_seed": Hex.encode(responderKey.seed),
                      "initiator_ephemeral_seed": Hex.encode(eISeed), "responder_ephemeral_seed": Hex.encode(eRSeed)],
            "initiator": ["identity_pk_sha256": Hex.encode(Digests.sha256(initiatorKey.publicKey)), "account_id": Hex.encode(initiatorKey.accountID),
                          "ephemeral_pk": Hex.encode(Array(msg1.dropFirst()))],
            "responder": ["identity_pk_sha256": Hex.encode(Digests.sha256(responderKey.publicKey)), "node_id": responderKey.nodeID.hex,
                          "ephemeral_pk": Hex.encode(eR)],
            "ct_i": Hex.encode(ctI), "ct_r": Hex.encode(ctR), "sig_r": Hex.encode(sigR), "sig_i": Hex.encode(sigI),
            "payload_r": Hex.encode(payloadR), "payload_i": Hex.encode(peer.payload),
            "egress_auth": ["exit_node_id": responderKey.nodeID.hex, "unix_seconds": unixSeconds,
                            "window_slot": TimeWindow.slot(unixSeconds: unixSeconds), "binding_h": Hex.encode(binding),
                            "nonce": Hex.encode(auth.nonce), "proof": Hex.encode(auth.proof), "egress_auth": Hex.encode(auth.encode()),
                            "length": auth.encode().count],
            "msg1": Hex.encode(msg1), "msg2": Hex.encode(msg2), "msg3": Hex.encode(msg3),
            "framing": ["msg1": Hex.encode([UInt8].be(UInt16(msg1.count))), "msg2": Hex.encode([UInt8].be(UInt16(msg2.count))),
                        "msg3": Hex.encode([UInt8].be(UInt16(msg3.count)))],
            "initiator_steps": steps, "responder_steps": responder.transcriptHashes.map { ["h": Hex.encode($0)] },
            "k_i2r": Hex.encode(keys.sendKey), "k_r2i": Hex.encode(keys.receiveKey), "resume_secret": Hex.encode(keys.resumeSecret),
            "handshake_hash": Hex.encode(keys.handshakeHash), "session_id": Hex.encode(keys.sessionID),
        ]
    }

    static func frames(key: [UInt8]) throws -> [[String: Any]] {
        var cipher = TransportCipher(key: key)
        let records: [(TransportRecord, String)] = [(.data(Array("hello".utf8)), "DATA 'hello'"), (.ack(5), "ACK 5 (u64 LE)"),
                                                    (.padding(7), "PADDING 7 zero bytes"), (.close(0), "CLOSE reason 0")]
        return try records.enumerated().map { i, pair in
            let plain = pair.0.encode()
            return ["direction": "i2r", "key": "k_i2r", "counter": i, "nonce": Hex.encode([0, 0, 0, 0] + [UInt8].be(UInt64(i))),
                    "plaintext": Hex.encode(plain), "frame": Hex.encode(try cipher.seal(plain)), "note": pair.1]
        }
    }

    static func egressMessages() -> [String: Any] {
        let valid: [(String, EgressMessage)] = [
            ("EgressOpen TCP IPv4 192.0.2.7:443", .open(EgressOpen(streamID: 1, transport: .tcp, address: .ipv4([192, 0, 2, 7]), port: 443))),
            ("EgressOpen UDP IPv6 2001:db8::1:53", .open(EgressOpen(streamID: 3, transport: .udp, address: .ipv6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]), port: 53))),
            ("EgressOpen TCP host example.com:80", .open(EgressOpen(streamID: 5, transport: .tcp, address: .host("example.com"), port: 80))),
            ("EgressOpenAck open", .openAck(streamID: 1, status: .open)),
            ("EgressOpenAck rate-limited", .openAck(streamID: 1, status: .rateLimited)),
            ("EgressData 3 bytes", .data(streamID: 1, payload: Array("abc".utf8))),
            ("EgressData empty", .data(streamID: 1, payload: [])),
            ("EgressData 65519 bytes (maximum)", .data(streamID: 1, payload: [UInt8](repeating: 0, count: 65519))),
            ("EgressClose policy", .close(streamID: 1, reason: .policy)),
            ("EgressKeepalive", .keepalive),
        ]
        func abbreviate(_ b: [UInt8]) -> String { b.count > 64 ? Hex.encode(b.prefix(16)) + "... (\(b.count) bytes)" : Hex.encode(b) }
        let invalid: [(String, [UInt8])] = [
            ("empty message", []), ("unknown type 0x07", [0x07]), ("EgressAuth type (0x01) on a stream", [0x01]),
            ("EgressOpen bad protocol 2", Hex.decode("02010000000200000000000050")!),
            ("EgressOpen bad addr_type 3", Hex.decode("02010000000003000000000050")!),
            ("EgressOpen host len 0", Hex.decode("02010000000002000050")!),
            ("EgressOpen host with a space", Hex.decode("0201000000000203612062" + "0050")!),
            ("EgressOpen truncated IPv4", Hex.decode("020100000000000a00")!),
            ("EgressOpen trailing byte", Hex.decode("02010000000000c000020701bb00")!),
            ("EgressOpenAck status 4", Hex.decode("030100000004")!), ("EgressOpenAck truncated", Hex.decode("0301000000")!),
            ("EgressClose reason 3", Hex.decode("050100000003")!),
            ("EgressData payload 65520 bytes", [0x04, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 65520)),
            ("EgressKeepalive with a body", [0x06, 0x00]),
        ]
        return ["valid": valid.map { ["case": $0.0, "message": abbreviate((try? $0.1.encode()) ?? [])] },
                "invalid_reset_stream": invalid.map { ["case": $0.0, "message": abbreviate($0.1)] }]
    }

    static func directoryEntries(node: IdentityKey) throws -> [String: Any] {
        let entry = try EgressDirectoryEntry(exitNodeID: node.nodeID.bytes, countryCode: "DE", capacityClass: .standard,
                                             advertisedWindow: UInt32(TimeWindow.window(unixSeconds: unixSeconds)))
        let good = entry.encode()
        var lower = good; lower[32] = UInt8(ascii: "d")
        var unassigned = good; unassigned[32] = UInt8(ascii: "Z"); unassigned[33] = UInt8(ascii: "Z")
        var capacity = good; capacity[34] = 3
        return [
            "valid": [["case": "DE, standard, current window", "entry": Hex.encode(good)]],
            "invalid": [["case": "lower-case country", "entry": Hex.encode(lower)],
                        ["case": "unassigned country ZZ", "entry": Hex.encode(unassigned)],
                        ["case": "capacity class 3", "entry": Hex.encode(capacity)],
                        ["case": "38 bytes", "entry": Hex.encode(good.dropLast())],
                        ["case": "40 bytes", "entry": Hex.encode(good + [0])]],
        ]
    }

    static func adverts(target: NodeID) throws -> [String: Any] {
        let window = UInt32(TimeWindow.window(unixSeconds: unixSeconds))
        let good = try ReachabilityAdvert(countryCode: "RU", asn: 12389, target: target.bytes, profile: 1,
                                          reachableNum: 3, reachableDen: 4, observedWindow: window).encode()
        let unknownVantage = try ReachabilityAdvert(countryCode: "ZZ", asn: 0, target: target.bytes, profile: 0,
                                                    reachableNum: 0, reachableDen: 1, observedWindow: window - 7).encode()
        var numOverDen = good; numOverDen[39] = 5
        var denZero = good; denZero[41] = 0; denZero[42] = 0; denZero[39] = 0
        var stale = good; stale.replaceSubrange(43..<47, with: [UInt8].le(window - 8))
        var profile = good; profile[38] = 5
        return [
            "current_window": UInt64(window),
            "valid": [["case": "RU AS12389, T1, 3/4", "advert": Hex.encode(good)],
                      ["case": "unknown vantage ZZ, 7 windows old", "advert": Hex.encode(unknownVantage)]],
            "invalid": [["case": "reachable_num > reachable_den", "advert": Hex.encode(numOverDen)],
                        ["case": "reachable_den = 0", "advert": Hex.encode(denZero)],
                        ["case": "8 windows old", "advert": Hex.encode(stale)],
                        ["case": "profile 5", "advert": Hex.encode(profile)],
                        ["case": "46 bytes", "advert": Hex.encode(good.dropLast())]],
        ]
    }

    static func signedRecord(node: IdentityKey, kem: KEMKey) throws -> [String: Any] {
        let entry = try EgressDirectoryEntry(exitNodeID: node.nodeID.bytes, countryCode: "DE", capacityClass: .high,
                                             advertisedWindow: UInt32(TimeWindow.window(unixSeconds: unixSeconds)))
        let record = DirectoryRecord(entry: entry, identityPublicKey: node.publicKey, kemPublicKey: kem.publicKey,
                                     roles: [.front, .exit], endpoints: [Endpoint(profile: 0, host: "203.0.113.5", port: 443)],
                                     issuedAt: unixSeconds, expiresAt: unixSeconds + 3600, operatorLabel: "example operator")
        let signed = try RecordSigner.sign(record, with: node).encode()
        var tampered = signed
        tampered[tampered.count - 100] ^= 1
        return ["record": Hex.encode(record.encode()), "signed_record": Hex.encode(signed), "tampered_signed_record": Hex.encode(tampered)]
    }
}
