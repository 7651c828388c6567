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
          montana demo                    whole alliance on loopback + local proxy
          montana alliance init DIR       found an alliance (alliance.json, alliance.secret)
          montana alliance endorse ...    admit a member node
          montana node init DIR           keys and a commented node.toml
          montana node --config FILE      run a member (front and/or exit)
          montana client init DIR         account key and a commented client.toml
          montana client --config FILE    local SOCKS5/HTTP proxy into the alliance
          montana client --subscription URL   the same, from a subscription alone
          montana subscription create ... a user's subscription (bootstrap links, pass)
          montana status --admin ADDR     a node's or client's status
          montana inspect FILE            what a key or record file is
          montana vectors --check FILE    verify conformance vectors
        """,
        subcommands: [DemoCommand.self, NodeCommand.self, ClientCommand.self, ReachabilityCommand.self, KeygenCommand.self, InspectCommand.self, VectorsCommand.self, BenchCommand.self,
                      StatusCommand.self, DirectoryCommand.self, AllianceCommand.self, PassCommand.self, SubscriptionCommand.self]
    )
}
