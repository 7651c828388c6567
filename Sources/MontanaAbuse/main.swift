import Foundation
import NIOPosix

/// montana-abuse: the attacks of issue 6 against a running `montana demo`, with real sockets.
///   montana-abuse STATUS_JSON [attack ...]   attacks: ping-hoard control-flood preface-flood
///                                            bad-prefaces malformed-connect self-egress (default: all)
/// Options (environment): ABUSE_PING_MIB (256), ABUSE_FLOOD_SECONDS (60), ABUSE_PREFACE_RATE (1000),
/// ABUSE_PREFACE_SECONDS (20). Exit status 1 if any attack was not contained.
let arguments = CommandLine.arguments.dropFirst()
guard let statusPath = arguments.first else {
    FileHandle.standardError.write(Data("usage: montana-abuse STATUS_JSON [ping-hoard|control-flood|preface-flood|bad-prefaces|malformed-connect|self-egress ...]\n".utf8))
    exit(2)
}
let all = ["malformed-connect", "self-egress", "ping-hoard", "control-flood", "preface-flood", "bad-prefaces"]
let chosen = arguments.count > 1 ? Array(arguments.dropFirst()) : all
func env(_ name: String, _ fallback: Int) -> Int { ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? fallback }

let demo: DemoTarget
do {
    demo = try DemoTarget.load(statusPath)
} catch {
    print("montana-abuse: \(error)")
    exit(2)
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
let attacks = Attacks(demo: demo, group: group, userGroup: MultiThreadedEventLoopGroup(numberOfThreads: 1))
let floodSources = (2...9).map { "127.0.0.\($0)" }
var failed = 0
for name in chosen {
    let report: AttackReport
    do {
        switch name {
        case "ping-hoard": report = try attacks.pingHoarding(bytes: env("ABUSE_PING_MIB", 256) * 1_048_576, seconds: 60)
        case "control-flood": report = try attacks.controlFlood(seconds: Double(env("ABUSE_FLOOD_SECONDS", 60)))
        case "preface-flood":
            guard let front = demo.frontOnly else { throw AbuseError("no front-only city") }
            report = try attacks.prefaceFlood(rate: env("ABUSE_PREFACE_RATE", 1000), seconds: Double(env("ABUSE_PREFACE_SECONDS", 20)),
                                              sources: floodSources, city: front)
        case "bad-prefaces":
            guard let front = demo.frontOnly else { throw AbuseError("no front-only city") }
            report = try attacks.badPrefaces(rate: env("ABUSE_PREFACE_RATE", 1000), seconds: 10, sources: floodSources, city: front)
        case "malformed-connect": report = try attacks.malformedConnect()
        case "self-egress": report = try attacks.selfEgress()
        default:
            print("montana-abuse: unknown attack \(name) (known: \(all.joined(separator: " ")))")
            exit(2)
        }
    } catch {
        print("== \(name): FAIL (could not run: \(error))")
        failed += 1
        continue
    }
    print(report.printed())
    if !report.passed { failed += 1 }
    // Let the node settle (discarders close, sessions time out) before the next attack.
    sleep(3)
}
print("\nabuse: \(chosen.count - failed) contained, \(failed) not contained")
try? group.syncShutdownGracefully()
exit(failed == 0 ? 0 : 1)
