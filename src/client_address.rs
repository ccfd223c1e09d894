//! The client's address behind the ingress (docs/operations.md "The client's address
//! behind the ingress"). Start at the TCP peer; while the address in hand is a trusted
//! proxy, step one address to the left in the one forwarding header the operator named
//! (`server.client_address_header`: `X-Forwarded-For`, or RFC 7239 `Forwarded` and its
//! `for=`); the other header is never read, since a proxy passes on whatever a client wrote
//! in a header it does not manage. Every line of the header counts, in order. The walk
//! stops at the first untrusted address, at the leftmost one, or at the last good address
//! before a malformed entry (a line that is not ASCII is one). A peer that is not trusted is
//! the client, whatever it forwards. IPv4-mapped IPv6 addresses count as the IPv4 address
//! they carry.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// The forwarding header the trusted proxies write (`server.client_address_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardingHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl ForwardingHeader {
    /// The header of this name (lower case), if it is one of the two.
    pub fn named(name: &str) -> Option<Self> {
        [Self::XForwardedFor, Self::Forwarded]
            .into_iter()
            .find(|header| header.name() == name)
    }

    /// The header's name, in lower case.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }

    /// The addresses of one line of this header, left to right; `None` for an entry that
    /// is not an address (it ends the walk).
    fn hops(self, line: &str) -> Vec<Option<IpAddr>> {
        match self {
            Self::XForwardedFor => line
                .split(',')
                .map(|entry| plain_address(entry.trim()))
                .collect(),
            Self::Forwarded => rfc7239::parse(line)
                .map(|node| node.ok()?.forwarded_for?.ip().copied())
                .collect(),
        }
    }
}

/// The proxies whose forwarding header is believed (`server.trusted_proxies`), which
/// header that is, and how IPv6 clients are grouped.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardingHeader,
    ipv6_prefix: u8,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::new(Vec::new(), ForwardingHeader::default(), 64)
    }
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>, header: ForwardingHeader, ipv6_prefix: u8) -> Self {
        Self {
            networks,
            header,
            ipv6_prefix,
        }
    }

    /// The header whose lines `client_of` takes.
    pub fn header(&self) -> ForwardingHeader {
        self.header
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The client address of a request from `peer` with these lines of the configured
    /// forwarding header, in order (`None` for a line that is not ASCII). The lines are read
    /// only when `peer` is a trusted proxy.
    pub fn client_of<'a>(
        &self,
        peer: IpAddr,
        lines: impl Iterator<Item = Option<&'a str>>,
    ) -> ClientAddress {
        let mut current = peer.to_canonical();
        if self.trusts(current) {
            let hops: Vec<Option<IpAddr>> = lines
                .flat_map(|line| line.map_or_else(|| vec![None], |line| self.header.hops(line)))
                .collect();
            for hop in hops.into_iter().rev() {
                let Some(address) = hop else { break };
                current = address.to_canonical();
                if !self.trusts(current) {
                    break;
                }
            }
        }
        ClientAddress {
            ip: current,
            text: Text::of(current),
            ipv6_prefix: self.ipv6_prefix,
        }
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
pub struct ClientAddress {
    ip: IpAddr,
    /// `ip` as text, written once: the closing log line, the audit events and the
    /// per-client quota each take it.
    text: Text,
    /// How many leading bits of an IPv6 address name one client (`server.client_ipv6_prefix`).
    ipv6_prefix: u8,
}

impl ClientAddress {
    pub fn ip(self) -> IpAddr {
        self.ip
    }

    /// The address as text (`203.0.113.7`, `2001:db8::1`).
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// `group` as text: the address itself for IPv4.
    pub fn group_text(&self) -> Cow<'_, str> {
        match self.ip {
            IpAddr::V4(_) => Cow::Borrowed(self.as_str()),
            IpAddr::V6(_) => Cow::Owned(self.group().to_string()),
        }
    }

    /// The unit a per-client limit counts: an IPv4 address, or the IPv6 prefix an address is
    /// in (a mobile network gives each subscriber a whole /64).
    pub fn group(self) -> IpAddr {
        match self.ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let keep = u32::from(self.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The longest text of an address: an IPv6 address that ends in an IPv4 one
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
const LONGEST_TEXT: usize = 45;

/// An address's text, kept inline so that `ClientAddress` stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Text {
    len: u8,
    bytes: [u8; LONGEST_TEXT],
}

impl Text {
    /// Every request writes its client's address: an IPv4 one octet by octet with `itoa`
    /// (0.2 k instructions, where `Display` through `core::fmt` took 1.1 k), an IPv6
    /// one, whose zeros the text shortens, with its `Display`.
    fn of(ip: IpAddr) -> Self {
        let mut text = Self {
            len: 0,
            bytes: [0; LONGEST_TEXT],
        };
        let written = match ip {
            IpAddr::V4(v4) => {
                let mut digits = itoa::Buffer::new();
                v4.octets()
                    .into_iter()
                    .enumerate()
                    .try_for_each(|(i, octet)| {
                        if i > 0 {
                            text.write_str(".")?;
                        }
                        text.write_str(digits.format(octet))
                    })
            }
            IpAddr::V6(v6) => write!(text, "{v6}"),
        };
        written.expect("an address's text fits its longest form");
        text
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("an address's text is ASCII")
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let end = start + part.len();
        self.bytes
            .get_mut(start..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(part.as_bytes());
        self.len = u8::try_from(end).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(networks: &[&str], header: ForwardingHeader) -> TrustedProxies {
        TrustedProxies::new(
            networks.iter().map(|n| n.parse().unwrap()).collect(),
            header,
            64,
        )
    }

    use ForwardingHeader::{Forwarded as F, XForwardedFor as X};

    /// (peer, header, its lines, client, what)
    type Case<'a> = (&'a str, ForwardingHeader, &'a [&'a str], &'a str, &'a str);

    #[test]
    fn the_walk_believes_only_trusted_hops_in_the_one_header() {
        let cases: &[Case] = &[
            ("203.0.113.7", X, &[], "203.0.113.7", "no proxy, no header"),
            (
                "203.0.113.7",
                X,
                &["198.51.100.1"],
                "203.0.113.7",
                "an untrusted peer's forged header is ignored",
            ),
            (
                "203.0.113.7",
                F,
                &["for=198.51.100.1"],
                "203.0.113.7",
                "an untrusted peer's forged Forwarded is ignored",
            ),
            (
                "10.1.2.3",
                X,
                &[],
                "10.1.2.3",
                "a trusted peer with no header",
            ),
            (
                "10.1.2.3",
                X,
                &["198.51.100.9"],
                "198.51.100.9",
                "one trusted hop",
            ),
            (
                "10.1.2.3",
                X,
                &["1.1.1.1, 198.51.100.9, 10.9.9.9"],
                "198.51.100.9",
                "a chain of trusted proxies; the forged leftmost entry is not reached",
            ),
            (
                "10.1.2.3",
                X,
                &["1.1.1.1", "198.51.100.9, 10.9.9.9"],
                "198.51.100.9",
                "several header lines read as one list",
            ),
            (
                "10.1.2.3",
                X,
                &["10.7.7.7, 10.9.9.9"],
                "10.7.7.7",
                "all trusted: the leftmost",
            ),
            (
                "10.1.2.3",
                X,
                &["198.51.100.9, bogus, 10.9.9.9"],
                "10.9.9.9",
                "a malformed entry ends the walk at the last good address",
            ),
            (
                "10.1.2.3",
                X,
                &["198.51.100.9, "],
                "10.1.2.3",
                "an empty entry is malformed",
            ),
            (
                "10.1.2.3",
                X,
                &["198.51.100.9:4711"],
                "198.51.100.9",
                "an address with a port",
            ),
            (
                "10.1.2.3",
                X,
                &["2001:db8::1"],
                "2001:db8::1",
                "IPv6 in X-Forwarded-For",
            ),
            (
                "10.1.2.3",
                F,
                &["for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\""],
                "2001:db8:cafe::17",
                "quoted IPv6 with a port",
            ),
            (
                "10.1.2.3",
                F,
                &["for=192.0.2.60", "for=\"[fd00::5]\""],
                "192.0.2.60",
                "Forwarded lines in order; bracketed IPv6 without a port",
            ),
            (
                "10.1.2.3",
                F,
                &["for=192.0.2.60, for=unknown"],
                "10.1.2.3",
                "an unknown node ends the walk",
            ),
            (
                "10.1.2.3",
                F,
                &["for=192.0.2.60, proto"],
                "10.1.2.3",
                "a malformed Forwarded element ends the walk",
            ),
            (
                "10.1.2.3",
                F,
                &["for=192.0.2.60, by=10.1.2.3"],
                "10.1.2.3",
                "an element with no for= ends the walk",
            ),
            (
                "::ffff:10.1.2.3",
                X,
                &["::ffff:198.51.100.9"],
                "198.51.100.9",
                "IPv4-mapped IPv6 is IPv4, as peer and as hop",
            ),
            (
                "fd00::1",
                X,
                &["198.51.100.9"],
                "198.51.100.9",
                "a trusted IPv6 proxy",
            ),
        ];
        for (peer, header, lines, client, what) in cases {
            let ingress = trusted(&["10.0.0.0/8", "fd00::/8"], *header);
            let found = ingress.client_of(ip(peer), lines.iter().map(|l| Some(*l)));
            assert_eq!(found.ip(), ip(client), "{what}");
        }
    }

    #[test]
    fn a_line_that_is_not_ascii_ends_the_walk_at_the_last_good_address() {
        let ingress = trusted(&["10.0.0.0/8"], X);
        // The client's own line (with a byte of 0x80 or more), then the proxy's.
        let lines = [None, Some("198.51.100.9")];
        let found = ingress.client_of(ip("10.1.2.3"), lines.into_iter());
        assert_eq!(
            found.ip(),
            ip("198.51.100.9"),
            "the proxy's line still counts"
        );
        let lines = [Some("198.51.100.9"), None];
        let found = ingress.client_of(ip("10.1.2.3"), lines.into_iter());
        assert_eq!(found.ip(), ip("10.1.2.3"), "a bad last line: the peer");
    }

    #[test]
    fn nothing_is_trusted_by_default() {
        let found =
            TrustedProxies::default().client_of(ip("127.0.0.1"), [Some("1.2.3.4")].into_iter());
        assert_eq!(found.ip(), ip("127.0.0.1"));
    }

    #[test]
    fn quotas_count_ipv4_addresses_and_ipv6_prefixes() {
        let group = |text: &str| {
            let proxies = TrustedProxies::default();
            proxies.client_of(ip(text), std::iter::empty()).group()
        };
        assert_eq!(group("198.51.100.9"), ip("198.51.100.9"));
        assert_ne!(group("198.51.100.9"), group("198.51.100.10"));
        assert_eq!(group("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2::"));
        assert_eq!(group("2001:db8:1:2:aaaa::1"), group("2001:db8:1:2:ffff::9"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("::ffff:198.51.100.9"), ip("198.51.100.9"));
        let by_48 = TrustedProxies::new(Vec::new(), X, 48);
        let group = by_48
            .client_of(ip("2001:db8:1:2:aaaa::1"), std::iter::empty())
            .group();
        assert_eq!(group, ip("2001:db8:1::"), "a /48");
    }

    #[test]
    fn the_text_written_once_is_the_addresss_and_its_groups() {
        for peer in [
            "198.51.100.9",
            "255.255.255.255",
            "::ffff:198.51.100.9",
            "2001:db8:1:2:aaaa::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::",
        ] {
            let client = TrustedProxies::default().client_of(ip(peer), std::iter::empty());
            assert_eq!(client.as_str(), client.ip().to_string(), "{peer}");
            assert_eq!(client.to_string(), client.ip().to_string(), "{peer}");
            assert_eq!(client.group_text(), client.group().to_string(), "{peer}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_text_of_any_address_is_its_display(
            v4 in proptest::prelude::any::<std::net::Ipv4Addr>(),
            v6 in proptest::prelude::any::<Ipv6Addr>(),
        ) {
            for ip in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                let text = Text::of(ip);
                proptest::prop_assert_eq!(text.as_str(), ip.to_string());
            }
        }
    }
}
