/// The destinations every exit refuses unless its operator names them in `allow` (PROTOCOL.md 7.3):
/// the exit's own host and networks, cloud metadata, and SMTP (spam).
public enum BuiltinDenials {
    public static let networks: [IPNetwork] = [
        "0.0.0.0/8",        // "this network", incl. unspecified 0.0.0.0
        "10.0.0.0/8",       // RFC 1918
        "100.64.0.0/10",    // CGNAT shared space
        "127.0.0.0/8",      // loopback
        "169.254.0.0/16",   // link-local, incl. 169.254.169.254 cloud metadata
        "172.16.0.0/12",    // RFC 1918
        "192.168.0.0/16",   // RFC 1918
        "224.0.0.0/4",      // multicast
        "240.0.0.0/4",      // reserved, incl. 255.255.255.255 broadcast
        "::/96",            // unspecified, loopback and deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",   // local-use NAT64 (RFC 8215): translates into the operator's own networks
        "fc00::/7",         // unique local
        "fe80::/10",        // link-local
        "fec0::/10",        // deprecated site-local, still routed locally by some networks
        "ff00::/8",         // multicast
    ].map(IPNetwork.init)

    public static let ports: [ClosedRange<UInt16>] = [25...25]
}
