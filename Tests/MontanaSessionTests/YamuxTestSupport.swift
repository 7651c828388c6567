import MontanaSession
import NIOCore
import XCTest

/// Two connections wired back to back in memory, as client and server of one session.
struct YamuxPair {
    var client: YamuxConnection
    var server: YamuxConnection
    var clientEvents: [YamuxEvent] = []
    var serverEvents: [YamuxEvent] = []
    var now: UInt64 = 1_000_000_000

    init(client: YamuxConfiguration = YamuxConfiguration(), server: YamuxConfiguration = YamuxConfiguration()) {
        self.client = YamuxConnection(role: .client, configuration: client)
        self.server = YamuxConnection(role: .server, configuration: server)
    }

    /// Moves outbound bytes both ways until neither side has anything left to send.
    mutating func pump() throws {
        var moved = true
        while moved {
            moved = false
            if let bytes = client.takeOutbound() {
                serverEvents += try server.receive(bytes, now: now)
                moved = true
            }
            if let bytes = server.takeOutbound() {
                clientEvents += try client.receive(bytes, now: now)
                moved = true
            }
        }
    }
}

extension Array where Element == YamuxEvent {
    /// All data bytes this event list carries for `id`.
    func bytes(on id: YamuxStreamID) -> [UInt8] {
        var out: [UInt8] = []
        for case .data(let stream, let buffer) in self where stream == id {
            out.append(contentsOf: buffer.readableBytesView)
        }
        return out
    }

    func dataByteCount(on id: YamuxStreamID) -> Int { bytes(on: id).count }

    /// The events other than data.
    var control: [YamuxEvent] {
        filter { if case .data = $0 { return false } else { return true } }
    }
}

func header(_ type: YamuxFrameType, _ flags: YamuxFlags, _ id: UInt32, _ length: UInt32) -> ByteBuffer {
    var buffer = ByteBuffer()
    YamuxFrameHeader(type: type, flags: flags, streamID: id, length: length).encode(into: &buffer)
    return buffer
}

func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed }
}

/// A small deterministic generator so the fuzz-style tests replay identically.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
