extension ClientConfiguration {
    /// A fully commented `client.toml` for `montana client init`, with the generated account key
    /// path and any members already known (e.g. from a subscription or the demo).
    public static func template(accountKeyPath: String, members: [PeerConfiguration] = [],
                                socks: HostPort = ClientConfiguration.defaultSOCKS) -> String {
        var text = """
        # Montana Alliance client.
        # Relative paths resolve against this file's directory. Unknown keys are errors.

        [client]
        # account identity seed (mode 0600; see `montana keygen account`)
        account_key = \(NodeConfiguration.quoted(accountKeyPath))
        # SOCKS5 proxy for your apps; "" turns it off
        socks = "\(socks)"
        # http = "127.0.0.1:8080"                 # HTTP proxy (CONNECT and plain requests)
        # mixed = "127.0.0.1:7890"                # one port that detects SOCKS5 or HTTP
        country = "auto"                          # default exit: auto | ISO 3166-1 alpha-2 code
        # username = ""                           # local proxy authentication (RFC 1929 / Basic)
        # password = ""                           # needed when a listener is not on loopback
        # alliance = ""                           # 16-byte hex alliance UUID sent in prefaces
        # exit_as_front = false                   # true lets an exit be its own front when no other front
        #                                         # is reachable: that exit then sees your address
        # source = "127.0.1.1"                    # local address to connect to fronts from (default: the OS picks)
        # subscription = "sub.json"               # or "http://provider.example:8080/": members from the directory
        # admin = "127.0.0.1:9091"                # status port: `montana status --admin 127.0.0.1:9091`
        # cache = "client-cache.sqlite"           # the directory cache
        # advisory_exits = false                  # also use exits whose country is not corroborated
        # probe_interval_seconds = 60             # feeler probes of fronts (±50 % jitter); 0 = off
        # optimistic_connect = "known"            # answer CONNECT before the exit does: never, known
        #                                         # (destinations opened in the last 10 min), always
        # geoip = "GeoLite2-Country.mmdb"         # names your vantage (country; AS from a CIDR,CC,ASN csv)
        # pass = "pass.json"                      # an account pass from your provider

        # Without a subscription: members listed statically:

        """
        if members.isEmpty {
            text += """
            # [[members]]
            # node_id = "<64 hex digits>"
            # kem_pk = "<2432 hex digits: X-Wing public key>"
            # endpoint = "198.51.100.7:7443"
            # country = "DE"
            # roles = ["front", "exit"]

            """
        }
        for member in members {
            text += member.tomlBlock(name: "members") + "\n"
        }
        text += """

        [log]
        level = "info"                            # trace|debug|info|notice|warning|error|critical

        """
        return text
    }
}
