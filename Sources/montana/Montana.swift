import ArgumentParser

@main
struct Montana: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "montana",
        abstract: "Montana Alliance: a censorship-resistant federation of VPN exits.",
        discussion: """
        Independent operators federate their exit servers. A client picks an exit country, connects to \
        any member front it can reach, and the front splices opaque ciphertext to the chosen exit. Client \
        and exit speak an end-to-end post-quantum session (Noise_PQ XX: X-Wing = ML-KEM-768 + X25519, \
        ML-DSA-65 identities, ChaCha20-Poly1305), so fronts learn neither destinations nor payload.

        Start here:
          montana demo                      a whole alliance on loopback plus a local proxy
          montana keygen node --out keys/   create a member's identity and preface keys
          montana inspect keys/identity.key what a key or record file is (never prints secrets)
          montana vectors --check FILE      check conformance vectors against this implementation
        """,
        subcommands: [DemoCommand.self, NodeCommand.self, ClientCommand.self, KeygenCommand.self, InspectCommand.self, VectorsCommand.self, BenchCommand.self]
    )
}
