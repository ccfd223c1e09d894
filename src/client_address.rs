//! The client's address behind the ingress (docs/operations.md "The client's address behind the ingress"). Start at the TCP peer; while
//! the address in hand is a trusted proxy, step one address to the left in `Forwarded`
//! (RFC 7239 `for=`) when that header is present, else in `X-Forwarded-For`. The walk stops
//! at the first untrusted address, at the leftmost one, or at the last good address before
//! a malformed entry. A peer that is not trusted is the client, whatever it forwards.
//! IPv4-mapped IPv6 addresses count as the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client address of a request from `peer` with these forwarding header values
    /// (every line of the header, in order). The headers are read only when `peer` is a
    /// trusted proxy.
    pub fn client_of<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl Iterator<Item = &'a str>,
        x_forwarded_for: impl Iterator<Item = &'a str>,
    ) -> ClientAddress {
        let mut current = peer.to_canonical();
        if !self.trusts(current) {
            return ClientAddress(current);
        }
        let mut forwarded = forwarded.peekable();
        let hops: Vec<Option<IpAddr>> = if forwarded.peek().is_some() {
            forwarded
                .flat_map(rfc7239::parse)
                .map(|node| node.ok()?.forwarded_for?.ip().copied())
                .collect()
        } else {
            x_forwarded_for
                .flat_map(|line| line.split(','))
                .map(|entry| plain_address(entry.trim()))
                .collect()
        };
        for hop in hops.into_iter().rev() {
            let Some(address) = hop else { break };
            current = address.to_canonical();
            if !self.trusts(current) {
                break;
            }
        }
        ClientAddress(current)
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port as some proxies write.
fn plain_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// Where a request came from, as far as the trusted proxies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    pub fn ip(self) -> IpAddr {
        self.0
    }

    /// The unit a per-client quota counts: an IPv4 address, or the /64 an IPv6 address is
    /// in (one subscriber holds a whole /64).
    pub fn group(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|n| n.parse().unwrap()).collect())
    }

    /// (peer, Forwarded lines, X-Forwarded-For lines, client, what)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);

    #[test]
    fn the_walk_believes_only_trusted_hops() {
        let ingress = trusted(&["10.0.0.0/8", "fd00::/8"]);
        let cases: &[Case] = &[
            (
                "203.0.113.7",
                &[],
                &[],
                "203.0.113.7",
                "no proxy, no header",
            ),
            (
                "203.0.113.7",
                &[],
                &["198.51.100.1"],
                "203.0.113.7",
                "an untrusted peer's forged header is ignored",
            ),
            (
                "203.0.113.7",
                &["for=198.51.100.1"],
                &[],
                "203.0.113.7",
                "an untrusted peer's forged Forwarded is ignored",
            ),
            (
                "10.1.2.3",
                &[],
                &[],
                "10.1.2.3",
                "a trusted peer with no header",
            ),
            (
                "10.1.2.3",
                &[],
                &["198.51.100.9"],
                "198.51.100.9",
                "one trusted hop",
            ),
            (
                "10.1.2.3",
                &[],
                &["1.1.1.1, 198.51.100.9, 10.9.9.9"],
                "198.51.100.9",
                "a chain of trusted proxies; the forged leftmost entry is not reached",
            ),
            (
                "10.1.2.3",
                &[],
                &["1.1.1.1", "198.51.100.9, 10.9.9.9"],
                "198.51.100.9",
                "several header lines read as one list",
            ),
            (
                "10.1.2.3",
                &[],
                &["10.7.7.7, 10.9.9.9"],
                "10.7.7.7",
                "all trusted: the leftmost",
            ),
            (
                "10.1.2.3",
                &[],
                &["198.51.100.9, bogus, 10.9.9.9"],
                "10.9.9.9",
                "a malformed entry ends the walk at the last good address",
            ),
            (
                "10.1.2.3",
                &[],
                &["198.51.100.9, "],
                "10.1.2.3",
                "an empty entry is malformed",
            ),
            (
                "10.1.2.3",
                &[],
                &["198.51.100.9:4711"],
                "198.51.100.9",
                "an address with a port",
            ),
            (
                "10.1.2.3",
                &[],
                &["2001:db8::1"],
                "2001:db8::1",
                "IPv6 in X-Forwarded-For",
            ),
            (
                "10.1.2.3",
                &["for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\""],
                &["9.9.9.9"],
                "2001:db8:cafe::17",
                "Forwarded wins over X-Forwarded-For; quoted IPv6 with a port",
            ),
            (
                "10.1.2.3",
                &["for=192.0.2.60", "for=\"[fd00::5]\""],
                &[],
                "192.0.2.60",
                "Forwarded lines in order; bracketed IPv6 without a port",
            ),
            (
                "10.1.2.3",
                &["for=192.0.2.60, for=unknown"],
                &[],
                "10.1.2.3",
                "an unknown node ends the walk",
            ),
            (
                "10.1.2.3",
                &["for=192.0.2.60, proto"],
                &[],
                "10.1.2.3",
                "a malformed Forwarded element ends the walk",
            ),
            (
                "10.1.2.3",
                &["for=192.0.2.60, by=10.1.2.3"],
                &[],
                "10.1.2.3",
                "an element with no for= ends the walk",
            ),
            (
                "::ffff:10.1.2.3",
                &[],
                &["::ffff:198.51.100.9"],
                "198.51.100.9",
                "IPv4-mapped IPv6 is IPv4, as peer and as hop",
            ),
            (
                "fd00::1",
                &[],
                &["198.51.100.9"],
                "198.51.100.9",
                "a trusted IPv6 proxy",
            ),
        ];
        for (peer, forwarded, xff, client, what) in cases {
            let found = ingress.client_of(ip(peer), forwarded.iter().copied(), xff.iter().copied());
            assert_eq!(found.ip(), ip(client), "{what}");
        }
    }

    #[test]
    fn nothing_is_trusted_by_default() {
        let found = TrustedProxies::default().client_of(
            ip("127.0.0.1"),
            std::iter::empty(),
            ["1.2.3.4"].into_iter(),
        );
        assert_eq!(found.ip(), ip("127.0.0.1"));
    }

    #[test]
    fn quotas_count_ipv4_addresses_and_ipv6_slash_64s() {
        let group = |text: &str| ClientAddress(ip(text).to_canonical()).group();
        assert_eq!(group("198.51.100.9"), ip("198.51.100.9"));
        assert_ne!(group("198.51.100.9"), group("198.51.100.10"));
        assert_eq!(group("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2::"));
        assert_eq!(group("2001:db8:1:2:aaaa::1"), group("2001:db8:1:2:ffff::9"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("::ffff:198.51.100.9"), ip("198.51.100.9"));
    }
}
