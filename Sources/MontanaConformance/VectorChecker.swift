import Crypto
import Foundation
import MontanaCrypto
import MontanaWire

/// Checks a conformance-vector file in the shared schema (ours, or `independent-v1.json` from an
/// independent implementation) against this implementation. Every check is reported, pass or
/// fail, so a disagreement names the exact vector.
public struct VectorChecker {
    public struct Result: Sendable {
        public let name: String
        public let passed: Bool
        public let detail: String
    }

    public private(set) var results: [Result] = []
    let root: [String: Any]

    public init(json: Data) throws {
        guard let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw VectorError.malformed("top level is not an object")
        }
        self.root = root
    }

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw VectorError.malformed("\(path): cannot read") }
        try self.init(json: data)
    }

    public var failures: [Result] { results.filter { !$0.passed } }

    /// Runs every section present in the file.
    public mutating func checkAll() -> [Result] {
        let sections: [(String, (inout VectorChecker, [String: Any]) throws -> Void)] = [
            ("xwing_kat", { try $0.checkXWing($1) }),
            ("ml_dsa_kat", { try $0.checkMLDSA($1) }),
            ("ids", { try $0.checkIDs($1) }),
            ("preface_open", { try $0.checkPreface($1, name: "preface_open") }),
            ("preface_open_stop", { try $0.checkPreface($1, name: "preface_open_stop") }),
            ("preface_negative", { try $0.checkPrefaceNegative($1) }),
            ("noise_pq_xx", { try $0.checkNoise($1) }),
            ("egress_messages", { try $0.checkEgressMessages($1) }),
            ("egress_stream_open", { try $0.checkEgressStreamOpen($1) }),
            ("directory_entry", { try $0.checkDirectoryEntry($1) }),
            ("reachability_advert", { try $0.checkAdvert($1) }),
            ("signed_record", { try $0.checkSignedRecord($1) }),
            ("t1", { try $0.checkT1($1) }),
        ]
        for (key, check) in sections {
            guard let section = root[key] as? [String: Any] else { continue }
            do {
                try check(&self, section)
            } catch {
                record(key, false, "could not check: \(error)")
            }
        }
        if let frames = root["transport_frames"] as? [[String: Any]] {
            do { try checkFrames(frames) } catch { record("transport_frames", false, "could not check: \(error)") }
        }
        return results
    }

    mutating func record(_ name: String, _ passed: Bool, _ detail: String = "") {
        results.append(Result(name: name, passed: passed, detail: detail))
    }

    mutating func expectEqual(_ name: String, _ ours: [UInt8], _ theirs: [UInt8]) {
        if ours == theirs {
            record(name, true)
        } else {
            record(name, false, "ours \(Hex.encode(ours.prefix(48)))… ≠ vector \(Hex.encode(theirs.prefix(48)))…")
        }
    }

    // MARK: sections

    mutating func checkXWing(_ v: [String: Any]) throws {
        let key = try KEMKey(seed: hex(v, "seed"))
        if v["pk"] != nil { expectEqual("xwing_kat.pk", key.publicKey, try hex(v, "pk")) }
        expectEqual("xwing_kat.pk_sha256", Digests.sha256(key.publicKey), try hex(v, "pk_sha256"))
        if let encap = v["encap"] as? [String: Any] {
            expectEqual("xwing_kat.decapsulate", try key.decapsulate(hex(encap, "ct")), try hex(encap, "ss"))
        }
    }

    mutating func checkMLDSA(_ v: [String: Any]) throws {
        let key = try IdentityKey(seed: hex(v, "seed"))
        expectEqual("ml_dsa_kat.pk_sha256", Digests.sha256(key.publicKey), try hex(v, "pk_sha256"))
        if let sig = v["signature"] as? String, let msg = v["message"] as? String {
            record("ml_dsa_kat.verify", IdentityKey.verify(publicKey: key.publicKey, signature: Hex.decode(sig) ?? [], message: Hex.decode(msg) ?? []))
        }
    }

    mutating func checkIDs(_ v: [String: Any]) throws {
        if let node = v["node"] as? [String: Any] {
            let key = try IdentityKey(seed: hex(node, "identity_seed"))
            if node["identity_pk"] != nil { expectEqual("ids.node.identity_pk", key.publicKey, try hex(node, "identity_pk")) }
            expectEqual("ids.node.identity_pk_sha256", Digests.sha256(key.publicKey), try hex(node, "identity_pk_sha256"))
            expectEqual("ids.node.node_id", key.nodeID.bytes, try hex(node, "node_id"))
            expectEqual("ids.node.node_multihash", key.nodeID.multihash, try hex(node, "node_multihash"))
        }
        if let account = v["account"] as? [String: Any] {
            let key = try IdentityKey(seed: hex(account, "account_seed"))
            if account["account_pk"] != nil { expectEqual("ids.account.account_pk", key.publicKey, try hex(account, "account_pk")) }
            expectEqual("ids.account.account_pk_sha256", Digests.sha256(key.publicKey), try hex(account, "account_pk_sha256"))
            expectEqual("ids.account.account_id", key.accountID, try hex(account, "account_id"))
        }
        if let time = v["time"] as? [String: Any] {
            let t = try uint(time, "unix_seconds")
            record("ids.time.window", TimeWindow.window(unixSeconds: t) == (try uint(time, "window_W")))
            record("ids.time.slot", TimeWindow.slot(unixSeconds: t) == (try uint(time, "window_slot")))
        }
    }

    mutating func checkPreface(_ v: [String: Any], name: String) throws {
        let hop = try KEMKey(seed: hex(v, "hop_kem_seed"))
        if v["hop_kem_pk_sha256"] != nil { expectEqual("\(name).hop_kem_pk_sha256", Digests.sha256(hop.publicKey), try hex(v, "hop_kem_pk_sha256")) }
        let preface = try hex(v, "preface")
        guard let opened = try? Preface.open(preface, with: hop) else {
            record("\(name).open", false, "preface does not open")
            return
        }
        record("\(name).open", true)
        expectEqual("\(name).message_protobuf", opened.message.encode(), try hex(v, "message_protobuf"))
        expectEqual("\(name).k_req", opened.keys.requestKey, try hex(v, "k_req"))
        expectEqual("\(name).k_resp", opened.keys.responseKey, try hex(v, "k_resp"))
        // Sealing is deterministic once the encapsulation is fixed: re-seal and compare.
        let ct = Array(preface.prefix(KEMKey.ciphertextSize))
        let resealed = try Preface.seal(opened.message, ciphertext: ct, sharedSecret: hop.decapsulate(ct))
        expectEqual("\(name).reseal", resealed.bytes, preface)
        let responseBytes = try hex(v, "response_protobuf")
        let response: Preface.Message
        switch opened.message {
        case .hop: response = .hop(try HopMessage.decode(responseBytes))
        case .stop: response = .stop(try StopMessage.decode(responseBytes))
        }
        expectEqual("\(name).response", try Preface.sealResponse(response, keys: opened.keys), try hex(v, "response"))
    }

    mutating func checkPrefaceNegative(_ v: [String: Any]) throws {
        let hop = try KEMKey(seed: hex(v, "hop_kem_seed"))
        let now = try uint(v, "now")
        guard let cases = v["cases"] as? [[String: Any]] else { throw VectorError.malformed("preface_negative.cases") }
        let valid = (root["preface_open"] as? [String: Any]).flatMap { $0["preface"] as? String }.flatMap(Hex.decode)
        for c in cases {
            let label = c["case"] as? String ?? "?"
            let preface = try hex(c, "preface")
            var gate = PrefaceGate()
            if label.contains("replay"), let valid {
                _ = try? gate.admit(valid, key: hop, now: now)
            }
            do {
                _ = try gate.admit(preface, key: hop, now: now)
                record("preface_negative: \(label)", false, "was accepted")
            } catch {
                let expected = c["expect_reason"] as? String
                if let expected, expected != error.reason {
                    record("preface_negative: \(label)", false, "rejected as \(error.reason), vector says \(expected)")
                } else {
                    record("preface_negative: \(label)", true, error.reason)
                }
            }
        }
    }

    mutating func checkNoise(_ v: [String: Any]) throws {
        let seeds = try dict(v, "seeds")
        let initiatorKey = try IdentityKey(seed: hex(seeds, "initiator_identity_seed"))
        let responderKey = try IdentityKey(seed: hex(seeds, "responder_identity_seed"))
        let eISeed = try hex(seeds, "initiator_ephemeral_seed")
        let eRSeed = try hex(seeds, "responder_ephemeral_seed")
        let ctI = try hex(v, "ct_i"), ctR = try hex(v, "ct_r")
        let ssI = try KEMKey(seed: eISeed).decapsulate(ctI)
        let ssR = try KEMKey(seed: eRSeed).decapsulate(ctR)
        let msg1 = try hex(v, "msg1"), msg2 = try hex(v, "msg2"), msg3 = try hex(v, "msg3")
        let payloadR = try hex(v, "payload_r"), payloadI = try hex(v, "payload_i")
        let responderNode = responderKey.nodeID
        if let r = v["responder"] as? [String: Any], r["node_id"] != nil {
            expectEqual("noise.responder.node_id", responderNode.bytes, try hex(r, "node_id"))
        }

        var initiator = NoiseInitiator(identity: initiatorKey, expectedResponder: responderNode,
                                       entropy: RecordedEntropy(seed: eISeed, ciphertext: ctR, sharedSecret: ssR, signature: try hex(v, "sig_i")))
        var responder = NoiseResponder(identity: responderKey,
                                       entropy: RecordedEntropy(seed: eRSeed, ciphertext: ctI, sharedSecret: ssI, signature: try hex(v, "sig_r")))
        expectEqual("noise.msg1", try initiator.message1(), msg1)
        try responder.readMessage1(msg1)
        expectEqual("noise.msg2", try responder.message2(payload: payloadR), msg2)
        do {
            let peer = try initiator.readMessage2(msg2)
            record("noise.initiator_reads_msg2", peer.payload == payloadR)
        } catch {
            record("noise.initiator_reads_msg2", false, "\(error)")
            return
        }
        var binding: [UInt8] = []
        expectEqual("noise.msg3", try initiator.message3 { h in binding = h; return payloadI }, msg3)
        if let auth = v["egress_auth"] as? [String: Any], let b = auth["binding_h (h_payload_i)"] as? String ?? auth["binding_h"] as? String {
            expectEqual("noise.egress_auth.binding_h", binding, Hex.decode(b) ?? [])
        }
        let peer: NoisePeer
        do {
            peer = try responder.readMessage3(msg3)
            record("noise.responder_reads_msg3", peer.payload == payloadI)
        } catch {
            record("noise.responder_reads_msg3", false, "\(error)")
            return
        }
        expectEqual("noise.initiator_identity", peer.identityPublicKey, initiatorKey.publicKey)
        for (name, ours, theirs) in [("k_i2r", initiator.keys?.sendKey, "k_i2r"), ("k_r2i", initiator.keys?.receiveKey, "k_r2i"),
                                     ("resume_secret", initiator.keys?.resumeSecret, "resume_secret"),
                                     ("handshake_hash", initiator.keys?.handshakeHash, "handshake_hash"),
                                     ("session_id", initiator.keys?.sessionID, "session_id")] {
            expectEqual("noise.\(name)", ours ?? [], try hex(v, theirs))
        }
        record("noise.responder_keys_match", responder.keys?.sendKey == initiator.keys?.receiveKey && responder.keys?.receiveKey == initiator.keys?.sendKey)
        // Step-by-step transcript hashes.
        for (side, hashes) in [("initiator_steps", initiator.transcriptHashes), ("responder_steps", responder.transcriptHashes)] {
            guard let steps = v[side] as? [[String: Any]] else { continue }
            let theirs = steps.compactMap { ($0["h"] as? String).flatMap(Hex.decode) }
            record("noise.\(side).h", theirs == hashes, theirs == hashes ? "" : "\(theirs.count) vs \(hashes.count) hashes, first difference at \(zip(theirs, hashes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        }
        if let framing = v["framing"] as? [String: Any] {
            for (k, msg) in [("msg1", msg1), ("msg2", msg2), ("msg3", msg3)] {
                expectEqual("noise.framing.\(k)", [UInt8].be(UInt16(msg.count)), try hex(framing, k))
            }
        }
        // The EgressAuth inside msg3's payload must verify at the exit.
        if let auth = v["egress_auth"] as? [String: Any] {
            let now = try uint(auth, "unix_seconds")
            let tlvs = (try? TLV.decode(peer.payload)) ?? []
            guard let authTLV = tlvs.first(where: { $0.type == PayloadTLV.egressAuth }) else {
                record("noise.egress_auth.present", false)
                return
            }
            expectEqual("noise.egress_auth.bytes", authTLV.value, try hex(auth, "egress_auth"))
            var verifier = EgressAuthVerifier(exit: responderNode, admission: .anyAccount)
            do {
                let admitted = try verifier.verify(authTLV.value, initiatorPublicKey: peer.identityPublicKey,
                                                   bindingHash: responder.hashBeforePayload3, now: now)
                expectEqual("noise.egress_auth.account_id", admitted.accountID, initiatorKey.accountID)
            } catch {
                record("noise.egress_auth.verifies", false, "\(error)")
            }
        }
    }

    mutating func checkFrames(_ frames: [[String: Any]]) throws {
        let noise = root["noise_pq_xx"] as? [String: Any] ?? [:]
        for (i, f) in frames.enumerated() {
            let keyName = f["key"] as? String ?? "k_i2r"
            let key = try hex(noise, keyName)
            let counter = try uint(f, "counter")
            var sealer = TransportCipher(key: key, counter: counter)
            let plaintext = try hex(f, "plaintext")
            let frame = try hex(f, "frame")
            expectEqual("transport_frames[\(i)].seal", try sealer.seal(plaintext), frame)
            var opener = TransportCipher(key: key, counter: counter)
            let opened = try? opener.open(frame[2...])
            record("transport_frames[\(i)].open_and_decode", opened == plaintext && (try? TransportRecord.decode(plaintext)) != nil)
        }
    }

    mutating func checkEgressMessages(_ v: [String: Any]) throws {
        for c in v["valid"] as? [[String: Any]] ?? [] {
            let label = c["case"] as? String ?? "?"
            let bytes = try expandedHex(c, "message")
            if let m = try? EgressMessage.decode(bytes) {
                expectEqual("egress valid: \(label)", (try? m.encode()) ?? [], bytes)
            } else {
                record("egress valid: \(label)", false, "rejected")
            }
        }
        for c in v["invalid_reset_stream"] as? [[String: Any]] ?? [] {
            let label = c["case"] as? String ?? "?"
            let bytes = try expandedHex(c, "message")
            let rejected = (try? EgressMessage.decode(bytes)) == nil
            record("egress invalid: \(label)", rejected, rejected ? "" : "was accepted")
        }
    }

    mutating func checkEgressStreamOpen(_ v: [String: Any]) throws {
        let open = try hex(v, "egress_open")
        let data = try hex(v, "egress_data")
        record("egress_stream_open.egress_open decodes", (try? EgressMessage.decode(open)).map { (try? $0.encode()) == open } ?? false)
        record("egress_stream_open.egress_data decodes", (try? EgressMessage.decode(data)).map { (try? $0.encode()) == data } ?? false)
    }

    mutating func checkDirectoryEntry(_ v: [String: Any]) throws {
        for c in v["valid"] as? [[String: Any]] ?? [] {
            let bytes = try hex(c, "entry")
            let label = c["case"] as? String ?? "?"
            expectEqual("directory_entry valid: \(label)", (try? EgressDirectoryEntry.decode(bytes))?.encode() ?? [], bytes)
        }
        for c in v["invalid"] as? [[String: Any]] ?? [] {
            let label = c["case"] as? String ?? "?"
            record("directory_entry invalid: \(label)", (try? EgressDirectoryEntry.decode(hex(c, "entry"))) == nil)
        }
    }

    mutating func checkAdvert(_ v: [String: Any]) throws {
        let now = try uint(v, "current_window")
        for c in v["valid"] as? [[String: Any]] ?? [] {
            let bytes = try hex(c, "advert")
            let label = c["case"] as? String ?? "?"
            expectEqual("reachability_advert valid: \(label)", (try? ReachabilityAdvert.decode(bytes, currentWindow: now))?.encode() ?? [], bytes)
        }
        for c in v["invalid"] as? [[String: Any]] ?? [] {
            let label = c["case"] as? String ?? "?"
            record("reachability_advert invalid: \(label)", (try? ReachabilityAdvert.decode(hex(c, "advert"), currentWindow: now)) == nil)
        }
    }

    mutating func checkSignedRecord(_ v: [String: Any]) throws {
        let bytes = try hex(v, "signed_record")
        do {
            let record = try RecordSigner.verify(bytes)
            expectEqual("signed_record.record", record.encode(), try hex(v, "record"))
        } catch {
            self.record("signed_record.verifies", false, "\(error)")
        }
        if let tampered = v["tampered_signed_record"] as? String, let t = Hex.decode(tampered) {
            record("signed_record.tampered_rejected", (try? RecordSigner.verify(t)) == nil)
        }
    }

    /// The T1 section: token, TLS 1.3 schedule per suite, mask, c0/s0 and T1 traffic records.
    mutating func checkT1(_ v: [String: Any]) throws {
        let t = v["token"] as? [String: Any] ?? [:]
        let client = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try hex(t, "client_x25519_private"))
        let front = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try hex(t, "front_x25519_private"))
        expectEqual("t1.token.front_x25519_public", Array(front.publicKey.rawRepresentation), try hex(t, "front_x25519_public"))
        let sealed = try T1Token.seal(client: client, frontPublic: Array(front.publicKey.rawRepresentation), psk: try hex(t, "psk"),
                                      random: try hex(t, "random"), unixSeconds: UInt32(try uint(t, "unix_seconds")),
                                      shortID: try hex(t, "short_id"), aad: try hex(t, "aad"))
        expectEqual("t1.token.session_id", sealed.sessionID, try hex(t, "session_id"))
        expectEqual("t1.token.k_auth", sealed.authKey, try hex(t, "k_auth"))
        let opened = T1Token.open(front: front, clientShare: try hex(t, "client_x25519_public"), psk: try hex(t, "psk"),
                                  random: try hex(t, "random"), sessionID: try hex(t, "session_id"), aad: try hex(t, "aad"))
        record("t1.token.opens", opened?.authKey == (try hex(t, "k_auth")))
        var tampered = try hex(t, "aad")
        tampered[0] ^= 1
        record("t1.token.tampered_aad_refused", T1Token.open(front: front, clientShare: try hex(t, "client_x25519_public"), psk: try hex(t, "psk"),
                                                              random: try hex(t, "random"), sessionID: try hex(t, "session_id"), aad: tampered) == nil)
        for (i, s) in ((v["tls13_schedule"] as? [[String: Any]]) ?? []).enumerated() {
            guard let raw = UInt16(exactly: try uint(s, "suite")), let suite = TLS13.Suite(rawValue: raw) else {
                record("t1.tls13_schedule[\(i)]", false, "unknown suite"); continue
            }
            let name = "t1.tls13_schedule[\(String(format: "%04x", raw))]"
            let schedule = TLS13.Schedule(suite: suite, sharedSecret: try hex(s, "shared_secret"))
            let hs = schedule.handshakeTraffic(helloHash: try hex(s, "hello_hash"))
            let ap = schedule.applicationTraffic(serverFinishedHash: try hex(s, "server_finished_hash"))
            expectEqual("\(name).client_handshake_traffic", hs.client, try hex(s, "client_handshake_traffic"))
            expectEqual("\(name).server_handshake_traffic", hs.server, try hex(s, "server_handshake_traffic"))
            expectEqual("\(name).client_application_traffic", ap.client, try hex(s, "client_application_traffic"))
            expectEqual("\(name).server_application_traffic", ap.server, try hex(s, "server_application_traffic"))
            expectEqual("\(name).server_finished_verify", schedule.finished(baseKey: hs.server, transcriptHash: try hex(s, "hello_hash")),
                        try hex(s, "server_finished_verify"))
            var cipher = TLS13.RecordCipher(suite: suite, trafficSecret: hs.server)
            let sealedRecord = try hex(s, "record_sealed_seq0")
            expectEqual("\(name).record", try cipher.seal(try hex(s, "record_plaintext"), type: UInt8(try uint(s, "record_type")),
                                                          padding: Int(try uint(s, "record_padding"))), sealedRecord)
            var opener = TLS13.RecordCipher(suite: suite, trafficSecret: hs.server)
            let back = try? opener.open(header: Array(sealedRecord[0..<5]), payload: Array(sealedRecord[5...]))
            record("\(name).record_opens", back?.content == (try hex(s, "record_plaintext")))
        }
        let w = v["switch"] as? [String: Any] ?? [:]
        let authKey = try hex(w, "k_auth"), serverRandom = try hex(w, "server_random")
        expectEqual("t1.switch.mask", T1Switch.mask(authKey: authKey, serverRandom: serverRandom), try hex(w, "mask"))
        var (c0, s0) = T1Switch.stage0(authKey: authKey, serverRandom: serverRandom, clientFinishedRecord: try hex(w, "client_finished_record"))
        expectEqual("t1.switch.inner_hello_record", try c0.seal(try hex(w, "inner_hello"), type: 23, padding: Int(try uint(w, "inner_hello_padding"))),
                    try hex(w, "inner_hello_record"))
        expectEqual("t1.switch.inner_reply_record", try s0.seal(try hex(w, "inner_reply"), type: 23), try hex(w, "inner_reply_record"))
        var (cap, sap) = T1Switch.traffic(authKey: authKey, transcript: try hex(w, "transcript"), x25519: try hex(w, "x25519_secret"),
                                          mlkem: try hex(w, "mlkem_secret"))
        let plain = try hex(w, "carrier_plaintext")
        expectEqual("t1.switch.client_frame", try cap.seal(plain, type: 23), try hex(w, "client_frame_seq0"))
        expectEqual("t1.switch.server_frame", try sap.seal(plain, type: 23), try hex(w, "server_frame_seq0"))
    }

    // MARK: helpers

    func dict(_ v: [String: Any], _ key: String) throws -> [String: Any] {
        guard let d = v[key] as? [String: Any] else { throw VectorError.malformed("missing object \(key)") }
        return d
    }

    func hex(_ v: [String: Any], _ key: String) throws -> [UInt8] {
        guard let s = v[key] as? String, let b = Hex.decode(s) else { throw VectorError.malformed("missing hex field \(key)") }
        return b
    }

    /// Long messages are abbreviated in vectors as `prefix... (N bytes)`: the rest is zeros.
    func expandedHex(_ v: [String: Any], _ key: String) throws -> [UInt8] {
        guard let s = v[key] as? String else { throw VectorError.malformed("missing field \(key)") }
        if let range = s.range(of: "... ("), s.hasSuffix(" bytes)") {
            let prefix = String(s[..<range.lowerBound])
            let count = Int(s[range.upperBound...].dropLast(" bytes)".count)) ?? 0
            guard let head = Hex.decode(prefix), count >= head.count else { throw VectorError.malformed("bad abbreviated \(key)") }
            return head + [UInt8](repeating: 0, count: count - head.count)
        }
        guard let b = Hex.decode(s) else { throw VectorError.malformed("bad hex \(key)") }
        return b
    }

    func uint(_ v: [String: Any], _ key: String) throws -> UInt64 {
        if let n = v[key] as? NSNumber { return n.uint64Value }
        if let s = v[key] as? String, let n = UInt64(s) { return n }
        throw VectorError.malformed("missing integer \(key)")
    }
}

public enum VectorError: Error, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        switch self {
        case .malformed(let s): return "vector file: \(s)"
        }
    }
}
