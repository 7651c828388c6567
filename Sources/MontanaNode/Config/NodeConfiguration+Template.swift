import Foundation
import MontanaCrypto
import MontanaWire

extension NodeConfiguration {
    /// A fully commented `node.toml` for `montana node init`: every key with its default, the
    /// generated key paths, and this node's own `[[peers]]` block for other members to paste.
    public static func template(identityKeyPath: String, kemKeyPath: String, nodeID: NodeID, kemPublicKey: [UInt8]? = nil,
                                roles: NodeRoles = [.front, .exit], country: String = "DE",
                                transit: HostPort = NodeListen.defaultTransit, publicHost: String? = nil) -> String {
        let publicHostLine = publicHost.map { "public_host = \"\($0)\"" }
            ?? "# public_host = \"203.0.113.5\"           # what others dial; set it when transit is 0.0.0.0 or ::"
        var text = """
        # Montana Alliance member node.
        # This node's id: \(nodeID.hex)
        # Relative paths resolve against this file's directory. Unknown keys are errors.

        [node]
        # ML-DSA-65 identity seed and X-Wing preface key seed (mode 0600; see `montana keygen`)
        identity_key = \(quoted(identityKeyPath))
        kem_key = \(quoted(kemKeyPath))
        # any of "front" (clients enter here) and "exit" (traffic leaves here)
        roles = \(roles.tomlArray)
        # ISO 3166-1 alpha-2 code where exit traffic leaves; required for an exit
        country = "\(country)"
        capacity = "standard"                     # best-effort | standard | high
        # operator = "Example Ops"                # optional label, at most 64 bytes, published
        # state = "state.sqlite"                  # exits: per-account byte totals (no addresses, no destinations)
        # alliance = "00112233445566778899aabbccddeeff"  # 16-byte hex: prefaces must carry it

        [listen]
        # T0 carrier for clients and members (host:port, [v6]:port)
        transit = "\(transit)"
        \(publicHostLine)
        admin = "127.0.0.1:9090"                  # /metrics, /status, /healthz; keep it on loopback

        [limits]
        circuits_per_source = 64
        circuits_total = 4096
        handshakes_per_second = 200
        streams_per_session = 256                 # PROTOCOL 7.4 MAX_STREAMS_PER_SESSION
        egress_open_timeout_seconds = 30
        egress_idle_timeout_seconds = 240
        # sessions_per_account = 8                # exits: sessions of one account at once
        # streams_per_account = 1024              # exits: egress streams of one account
        # connect_attempts_per_open = 4           # exits: addresses dialled per TCP open
        # accounting_idle_days = 30               # exits: idle accounts folded into one rollup row
        # accounting_max_rows = 100000
        # window_budget_mib = 256                 # node-wide memory for grown stream windows
        # malloc_arenas = 1                       # glibc heap arenas (0 = glibc's default)
        # egress_small_buffers_after = 64         # exits: past this many open egress connections, 8 KiB reads
        # resume_hold_seconds = 60                # exits: hold a session whose carrier broke (0 = off)
        # resume_detached_max = 1024              # exits: sessions held without a carrier at once
        # resume_budget_mib = 256                 # exits: their unacknowledged data together
        # kernel_splice = true                    # fronts: relay bulk circuits with splice(2)

        # Per-prefix admission (docs/OPERATIONS.md has every key): one source or network cannot
        # exhaust the node; over a budget a connection is read and discarded silently.
        # [admission]
        # source_prefaces_per_second = 20         # per IPv4 /32, IPv6 /64 (burst 40)
        # network_prefaces_per_second = 50        # per IPv4 /24, IPv6 /48 (burst 100)
        # network_handshakes_per_second = 50      # a network's share of handshakes_per_second
        # replay_capacity = 65536

        """
        if roles.contains(.exit) {
            text += """

            [exit]
            admission = "any-account"                 # any-account | allow-list | pass
            allow_accounts = []                       # 64-hex account ids
            pass_issuers = []                         # 3904-hex ML-DSA-65 public keys or paths to *.pub.json
            policy = "default-allow"                  # default-allow | default-deny
            allow = []                                # CIDRs, host suffixes, ports ("443", "8000-8100")
            deny = []                                 # loopback, private ranges and port 25 are always denied
            # allow_private = []                      # the only way to re-open a built-in denial (CIDRs, ports)

            # The exit's own stub resolver (defaults: /etc/resolv.conf's servers, /etc/hosts):
            # [dns]
            # servers = ["127.0.0.53:53"]
            # timeout_ms = 5000                       # a lookup's deadline; the open then fails
            # max_per_session = 8                     # lookups in flight per session
            # max_inflight = 256                      # and per node

            """
        }
        text += """

        # The alliance (see `montana alliance init`, `montana alliance endorse`). With these set, the
        # node publishes its endorsed record, gossips the directory and attests other members:
        # [node] alliance = "alliance.json"       # the alliance's public file
        # [node] endorsement = "endorsement.json" # from `montana alliance endorse --node node.pub.json`
        # [node] operator = "..."                 # must equal the endorsed operator label
        # [directory]
        # bootstrap = ["montana://..."]           # one or more members' links (`montana node link` on theirs)
        # geoip = "GeoLite2-Country.mmdb"         # or a CIDR,CC csv: enables country attestations
        # database = "directory.sqlite"           # the directory store
        # attest = true
        # fanout = 3                              # random members exchanged with per minute

        # Without an alliance: other members listed statically, one block each:
        # [[peers]]
        # node_id = "<64 hex digits>"
        # kem_pk = "<2432 hex digits: X-Wing public key>"
        # endpoint = "198.51.100.7:7443"
        # country = "NL"
        # roles = ["front", "exit"]

        [log]
        level = "info"                            # trace|debug|info|notice|warning|error|critical

        """
        if let kemPublicKey {
            let endpoint = publicHost.map { HostPort(host: $0, port: transit.port) }
                ?? (transit.isWildcard ? HostPort(host: "<public address>", port: transit.port) : transit)
            let own = PeerConfiguration(nodeID: nodeID, kemPublicKey: kemPublicKey, endpoint: endpoint,
                                        country: roles.contains(.exit) ? country : nil, roles: roles)
            text += "\n# This node as other members list it in their [[peers]] (and clients in [[members]]):\n"
            text += own.tomlBlock(name: "peers").split(separator: "\n").map { "# \($0)" }.joined(separator: "\n") + "\n"
        }
        return text
    }

    /// A TOML basic string; key paths may hold backslashes or quotes.
    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
