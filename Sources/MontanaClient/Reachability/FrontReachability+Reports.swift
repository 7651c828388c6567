import MontanaWire

extension FrontReachability {
    /// The client's adverts for its vantage (PROTOCOL.md 9): for each front attempted in the last
    /// `reportWindows` windows, its successes out of its attempts over those windows, stamped with
    /// the newest window that saw an attempt. A front not attempted lately is not reported (its
    /// earlier vote expires at the fronts by itself), and neither are observations restored from
    /// the cache: a report says what this client saw from here *now*. At most `limit`, the fronts
    /// attempted most recently first.
    public func reports(country: String, asn: UInt32, window: UInt64, limit: Int) -> [ReachabilityAdvert] {
        let horizon = UInt64(Self.reportWindows)
        var out: [(attempt: UInt64, advert: ReachabilityAdvert)] = []
        for o in observations.values {
            // One advert per profile attempted (the map keeps (vantage, target, profile) apart).
            let perProfile: [(UInt8, [WindowOutcomes])] = o.recentByProfile.isEmpty ? [(UInt8(0), o.recent)]
                : o.recentByProfile.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            for (profile, recent) in perProfile {
                let fresh = recent.filter { $0.window <= window + 1 && $0.window + horizon >= window }
                guard let newest = fresh.last?.window, newest <= UInt64(UInt32.max) else { continue }
                var num = fresh.reduce(UInt64(0)) { $0 + UInt64($1.successes) }
                var den = fresh.reduce(UInt64(0)) { $0 + UInt64($1.successes) + UInt64($1.failures) }
                guard den > 0 else { continue }
                if den > UInt64(UInt16.max) {
                    // Keep the ratio within u16: scale both, keeping den ≥ 1 and num ≤ den.
                    num = num * UInt64(UInt16.max) / den
                    den = UInt64(UInt16.max)
                }
                guard let advert = try? ReachabilityAdvert(countryCode: country, asn: asn, target: o.node.bytes, profile: profile,
                                                           reachableNum: UInt16(num), reachableDen: UInt16(den),
                                                           observedWindow: UInt32(newest)) else { continue }
                out.append((o.lastAttempt, advert))
            }
        }
        return out.sorted { $0.attempt > $1.attempt || ($0.attempt == $1.attempt && $0.advert.target.lexicographicallyPrecedes($1.advert.target)) }
            .prefix(max(0, limit)).map(\.advert)
    }
}
