//! Addresses in every form they can take: numeric hosts read the way the system
//! resolver reads them, and the IPv4 address an IPv6 address carries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address itself and the IPv4 address it carries, if any.
pub(super) fn forms(address: IpAddr) -> [Option<IpAddr>; 2] {
    match address {
        IpAddr::V4(_) => [Some(address), None],
        IpAddr::V6(v6) => [Some(address), embedded_ipv4(v6).map(IpAddr::V4)],
    }
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 address.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = v6.segments();
    let octets = v6.octets();
    let tail = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    match segments {
        // ::ffff:a.b.c.d (mapped), and 64:ff9b::a.b.c.d (the well-known NAT64 prefix)
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // ::a.b.c.d (deprecated "compatible" form; :: and ::1 are not IPv4)
        [0, 0, 0, 0, 0, 0, _, _] if u128::from(v6) > 1 => Some(tail),
        // 2002:aabb:ccdd::/48, 6to4
        [0x2002, ..] => Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])),
        _ => None,
    }
}

/// Whether `host` is made only of what a numeric address uses, so that it must
/// never be handed to the resolver as a name.
pub(super) fn looks_numeric(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    !host.is_empty()
        && host.contains(|c: char| c.is_ascii_digit())
        && host
            .split('.')
            .all(|part| part.starts_with(|c: char| c.is_ascii_digit()))
}

/// A numeric host as the system resolver reads it: IPv6, or IPv4 in the forms
/// `inet_aton` accepts (one to four parts, each decimal, octal with a leading `0`,
/// or hex with `0x`; the last part fills the remaining bytes).
pub(super) fn parse_numeric_host(host: &str) -> Option<IpAddr> {
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let parts: Vec<u64> = host
        .split('.')
        .map(parse_aton_part)
        .collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|&part| part > 0xff) {
        return None;
    }
    let tail_bits = 8 * (4 - leading.len() as u32);
    if tail_bits < 64 && *last >= 1u64 << tail_bits {
        return None;
    }
    let value = leading
        .iter()
        .fold(0u64, |acc, &part| (acc << 8) | part)
        .checked_shl(tail_bits)?
        | last;
    u32::try_from(value)
        .ok()
        .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
}

fn parse_aton_part(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // "0x" alone is zero to inet_aton; an empty part is not a number.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|&v| v <= u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn numeric_hosts_are_read_as_the_resolver_reads_them() {
        let metadata = ip("169.254.169.254");
        for form in [
            "169.254.169.254",
            "2852039166",
            "0251.0376.0251.0376",
            "0xa9fea9fe",
            "0xA9.0xFE.0xA9.0xFE",
            "169.254.43518",
            "169.16689662",
            "169.254.169.254.",
        ] {
            assert_eq!(parse_numeric_host(form), Some(metadata), "{form}");
        }
        assert_eq!(parse_numeric_host("127.1"), Some(ip("127.0.0.1")));
        assert_eq!(parse_numeric_host("0"), Some(ip("0.0.0.0")));
        for not_an_address in [
            "256.1.1.1",
            "1.2.3.4.5",
            "08.1.1.1",
            "4294967296",
            "db.example.com",
            "1..1",
        ] {
            assert_eq!(parse_numeric_host(not_an_address), None, "{not_an_address}");
        }
    }
}
