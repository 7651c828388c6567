import ArgumentParser
import Foundation
import MontanaConformance

struct VectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vectors",
        abstract: "Generate our conformance vectors, or check a vector file against this implementation.",
        discussion: """
        `montana vectors --out docs/vectors` writes montana-v1.json: fixed seeds with recorded \
        ciphertexts and signatures (X-Wing encapsulation and ML-DSA signing are randomised, so each run \
        records new ones; regenerating the committed file is deliberate).
        `montana vectors --check FILE` verifies every vector in FILE (ours or an independent \
        implementation's, same schema) and exits non-zero on any disagreement.
        """
    )

    @Option(help: "Directory to write montana-v1.json into.")
    var out: String?

    @Option(help: "A vector file to check.")
    var check: String?

    @Flag(help: "With --check: print every check, not only failures.")
    var verbose = false

    func validate() throws {
        if out == nil && check == nil { throw ValidationError("give --out DIR to generate, or --check FILE to verify") }
    }

    func run() throws {
        if let out {
            let path = try VectorGenerator.write(to: out)
            print("wrote \(path)")
            var checker = try VectorChecker(path: path)
            let results = checker.checkAll()
            guard checker.failures.isEmpty else {
                throw ValidationError("freshly generated vectors fail \(checker.failures.count) of \(results.count) checks")
            }
            print("self-check: \(results.count) checks passed")
        }
        if let check {
            var checker = try VectorChecker(path: check)
            let results = checker.checkAll()
            for r in results where verbose || !r.passed {
                print("\(r.passed ? "ok  " : "FAIL") \(r.name)\(r.detail.isEmpty ? "" : ": \(r.detail)")")
            }
            print("\(results.count - checker.failures.count) passed, \(checker.failures.count) failed")
            if !checker.failures.isEmpty { throw ExitCode.failure }
        }
    }
}
