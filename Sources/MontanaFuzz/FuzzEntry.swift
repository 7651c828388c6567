import Foundation
import MontanaFuzzTargets

// Built two ways:
// - `swift build -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING --product montana-fuzz`: libFuzzer
//   supplies main and calls LLVMFuzzerTestOneInput; MONTANA_FUZZ_TARGET names the decoder.
// - normally: a replayer that runs a target over files (a corpus or a crash reproducer).

#if FUZZING
private let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["MONTANA_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("set MONTANA_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    selectedTarget.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

// SwiftPM links executables with `main` aliased to `<Module>_main`; provide it and hand control
// to libFuzzer's driver (libFuzzer's own `main` is then not linked).
@_cdecl("MontanaFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    _ = selectedTarget
    return LLVMFuzzerRunDriver(&count, &vector, fuzzOne)
}
#else
@main
enum FuzzReplay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: montana-fuzz TARGET FILE...   (replays inputs through a decoder)")
            print("targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
            print("to fuzz: swift build -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING --product montana-fuzz")
            exit(args.isEmpty ? 0 : 2)
        }
        for path in args.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path): cannot read")
                exit(1)
            }
            target.run(Array(data))
            print("\(path): ok")
        }
    }
}
#endif
