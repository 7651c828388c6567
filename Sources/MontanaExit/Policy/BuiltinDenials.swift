/// The destinations every exit refuses unless its operator names them in `allow_private`
/// (PROTOCOL.md 7.3): private, loopback and link-local networks, cloud metadata, special-purpose
/// and documentation ranges, and SMTP (spam). A broad `allow` (`0.0.0.0/0`, `::ffff:0:0/96`,
/// `1-65535`) never re-opens any of them. The exit's *own* addresses (interfaces, public host,
/// admin and member transit endpoints) are denied as well, by `SelfAddresses`.
///
/// IPv6 forms that reach an IPv4 host are judged by the IPv4 address they carry
/// (`IPAddress.embeddedIPv4Addresses`): IPv4-mapped, NAT64 `64:ff9b::/96`, SIIT
/// `::ffff:0:0:0/96`, 6to4 `2002::/16` and Teredo `2001::/32` (client and server). Those
/// prefixes are not listed here: an address in them is denied exactly when an IPv4 address it
/// embeds is denied.
public enum BuiltinDenials {
    public static let networks: [IPNetwork] = [
        "0.0.0.0/8",        // "this network", incl. unspecified 0.0.0.0
        "10.0.0.0/8",       // RFC 1918
        "100.64.0.0/10",    // CGNAT shared space
        "127.0.0.0/8",      // loopback
        "169.254.0.0/16",   // link-local, incl. 169.254.169.254 cloud metadata
        "172.16.0.0/12",    // RFC 1918
        "192.0.0.0/24",     // IETF protocol assignments (RFC 6890), incl. DS-Lite and NAT64 discovery
        "192.168.0.0/16",   // RFC 1918
        "198.18.0.0/15",    // benchmarking (RFC 2544): lab networks, often routed internally
        "224.0.0.0/4",      // multicast
        "240.0.0.0/4",      // reserved, incl. 255.255.255.255 broadcast
        "::/96",            // unspecified, loopback and deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",   // local-use NAT64 (RFC 8215): translates into the operator's own networks
        "100::/64",         // discard-only (RFC 6666): remote-triggered black holes
        "2001:db8::/32",    // documentation (RFC 3849): never a real destination
        "fc00::/7",         // unique local
        "fe80::/10",        // link-local
        "fec0::/10",        // deprecated site-local, still routed locally by some networks
        "ff00::/8",         // multicast
    ].map(IPNetwork.init)

    public static let ports: [ClosedRange<UInt16>] = [25...25]
}
