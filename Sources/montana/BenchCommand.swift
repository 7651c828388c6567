import ArgumentParser
import Foundation
import MontanaCrypto
import MontanaWire

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure protocol costs on this machine (use a release build).",
        subcommands: [HandshakeBench.self, HandshakeLoadBench.self, PrefaceBench.self, DirectoryBench.self]
    )
}

struct HandshakeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handshake",
        abstract: "CPU time of one Noise_PQ XX handshake, initiator and responder separately, and message sizes."
    )

    @Option(help: "Handshakes to run.")
    var iterations = 200

    func run() throws {
        let initiatorKey = try IdentityKey.generate()
        let responderKey = try IdentityKey.generate()
        var initiatorNanos: [UInt64] = []
        var responderNanos: [UInt64] = []
        var sizes = (0, 0, 0)
        let exit = responderKey.nodeID
        for _ in 0..<iterations {
            var i = NoiseInitiator(identity: initiatorKey, expectedResponder: exit)
            var r = NoiseResponder(identity: responderKey)
            var ti: UInt64 = 0, tr: UInt64 = 0
            let m1 = try timed(&ti) { try i.message1() }
            try timed(&tr) { try r.readMessage1(m1) }
            let m2 = try timed(&tr) { try r.message2(payload: TLV.encode([TLV(type: PayloadTLV.features, value: [1, 0, 0, 0])])) }
            try timed(&ti) { _ = try i.readMessage2(m2) }
            let m3 = try timed(&ti) {
                try i.message3 { h in
                    TLV.encode([TLV(type: PayloadTLV.egressAuth,
                                    value: try EgressAuthProof.build(account: initiatorKey, exit: exit, bindingHash: h,
                                                                     now: UInt64(Date().timeIntervalSince1970)).encode())])
                }
            }
            try timed(&tr) { _ = try r.readMessage3(m3) }
            initiatorNanos.append(ti)
            responderNanos.append(tr)
            sizes = (m1.count + 2, m2.count + 2, m3.count + 2)
        }
        func median(_ v: [UInt64]) -> Double { Double(v.sorted()[v.count / 2]) / 1000 }
        print("Noise_PQ XX, \(iterations) handshakes (msg3 carries an EgressAuth proof)")
        print("message sizes on the wire (with u16 length): msg1 \(sizes.0) B, msg2 \(sizes.1) B, msg3 \(sizes.2) B")
        print(String(format: "initiator CPU per handshake: median %.0f µs (incl. signing the EgressAuth proof)", median(initiatorNanos)))
        print(String(format: "responder CPU per handshake: median %.0f µs (EgressAuth verification not included)", median(responderNanos)))
        print(String(format: "responder capacity: ~%.0f handshakes/s per core", 1_000_000 / median(responderNanos)))
    }

    private func timed<T>(_ total: inout UInt64, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { total += DispatchTime.now().uptimeNanoseconds - start }
        return try body()
    }
}
