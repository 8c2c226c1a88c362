//! Checks on what a partner says about itself: name, roles, purposes, addresses.
//!
//! Owns the rules shared by the membership request and the member entry, so
//! that a request that passes here can be admitted as it is and a list whose
//! members pass here was admitted by these same rules.

use crate::error::{KeysError, Result};
use crate::ids::{Purpose, Role};
use crate::text::excerpt;

/// The most p2p addresses one member may give.
pub const MAX_ADDRESSES: usize = 16;
/// The most purposes one member may hold.
pub const MAX_PURPOSES: usize = 64;
/// The most regions one member may name: every municipality (342), safety
/// region (25) and youth-care region (42) of the Netherlands fit, with room.
pub const MAX_REGIONS: usize = 512;
const MAX_NAME: usize = 200;
const MAX_ADDRESS: usize = 256;

/// Checks a member's self-description.
pub fn check(
    name: &str,
    roles: &[Role],
    purposes: &[Purpose],
    p2p_addresses: &[String],
    grpc_endpoint: &str,
) -> Result<()> {
    check_name(name)?;
    check_strictly_sorted("roles", roles)?;
    check_strictly_sorted("purposes", purposes)?;
    if roles.is_empty() {
        return Err(KeysError::field(
            "roles",
            "at least one role is needed (bronhouder, afnemer)",
        ));
    }
    if purposes.is_empty() || purposes.len() > MAX_PURPOSES {
        return Err(KeysError::field(
            "purposes",
            format!("give 1 to {MAX_PURPOSES} purposes"),
        ));
    }
    if p2p_addresses.is_empty() || p2p_addresses.len() > MAX_ADDRESSES {
        return Err(KeysError::field(
            "p2p_addresses",
            format!("give 1 to {MAX_ADDRESSES} addresses"),
        ));
    }
    p2p_addresses
        .iter()
        .try_for_each(|a| check_p2p_address(a))?;
    check_grpc_endpoint(grpc_endpoint)
}

/// Checks that `items` are in strictly ascending order: sorted, no repeats.
/// Lists in signed objects are kept so, so that one set has one encoding.
pub fn check_strictly_sorted<T: Ord>(field: &'static str, items: &[T]) -> Result<()> {
    if items.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(KeysError::field(
            field,
            "must be sorted and without repeats",
        ))
    }
}

/// A display name: 1 to 200 characters, no control characters.
pub fn check_name(name: &str) -> Result<()> {
    // Most names are ASCII: then length and control characters are per byte.
    let (chars, control) = if name.is_ascii() {
        (name.len(), name.bytes().any(|b| b.is_ascii_control()))
    } else {
        (name.chars().count(), name.chars().any(char::is_control))
    };
    if name.trim().is_empty() || chars > MAX_NAME {
        return Err(KeysError::field(
            "name",
            format!("give a name of 1 to {MAX_NAME} characters"),
        ));
    }
    if control {
        return Err(KeysError::field(
            "name",
            "control characters are not allowed",
        ));
    }
    Ok(())
}

/// A region code: two ASCII capital letters then 2 to 4 ASCII digits, such as
/// the CBS codes `GM0363` (gemeente), `VR13` (veiligheidsregio) or `JR12`
/// (jeugdregio). The letters name the kind of region and the digits the
/// region; this crate does not keep a register of them.
pub fn check_region(code: &str) -> Result<()> {
    let bytes = code.as_bytes();
    let ok = (4..=6).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(())
    } else {
        Err(KeysError::field(
            "regions",
            format!(
                "{} is not a region code: two capital letters and 2 to 4 digits, such as GM0363 or VR13",
                excerpt(code)
            ),
        ))
    }
}

/// A member's regions: at most [`MAX_REGIONS`] codes, each valid, strictly
/// ascending (sorted bytewise, no repeats). Empty is allowed: no regions named.
pub fn check_regions(regions: &[String]) -> Result<()> {
    if regions.len() > MAX_REGIONS {
        return Err(KeysError::field(
            "regions",
            format!("give at most {MAX_REGIONS} regions"),
        ));
    }
    regions.iter().try_for_each(|r| check_region(r))?;
    check_strictly_sorted("regions", regions)
}

/// A libp2p multiaddress in text form, such as `/dns4/node.example.nl/tcp/4001`.
/// The node parses it fully; here it is checked for shape only, because
/// governance tools need not link libp2p.
pub fn check_p2p_address(address: &str) -> Result<()> {
    let ok = address.starts_with('/')
        && address.len() > 1
        && address.len() <= MAX_ADDRESS
        && !has_space_or_control(address)
        && !address.contains("//");
    if ok {
        Ok(())
    } else {
        Err(KeysError::field(
            "p2p_addresses",
            format!(
                "{} is not a multiaddress such as /dns4/node.example.nl/tcp/4001",
                excerpt(address)
            ),
        ))
    }
}

/// `host:port` where the member's peer gRPC listener is reached, such as
/// `node.example.nl:7443` or `[2001:db8::1]:7443`.
pub fn check_grpc_endpoint(endpoint: &str) -> Result<()> {
    let bad = || {
        KeysError::field(
            "grpc_endpoint",
            format!(
                "{} is not host:port, such as node.example.nl:7443",
                excerpt(endpoint)
            ),
        )
    };
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    // Digits only and no leading zero: one port, one spelling.
    if port.is_empty() || port.starts_with('0') || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && !host.contains("://")
        && !host.contains('/')
        && !has_space_or_control(host);
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

/// Whether `text` holds white space or a control character (Unicode's, as
/// `char` defines them), with a fast path for ASCII.
fn has_space_or_control(text: &str) -> bool {
    if text.is_ascii() {
        // ASCII white space is 0x09-0x0d and 0x20; controls are 0x00-0x1f, 0x7f.
        text.bytes().any(|b| b <= b' ' || b == 0x7f)
    } else {
        text.chars().any(|c| c.is_whitespace() || c.is_control())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(check_grpc_endpoint("node.example.nl:7443").is_ok());
        assert!(check_grpc_endpoint("127.0.0.1:7443").is_ok());
        assert!(check_grpc_endpoint("[::1]:7443").is_ok());
        for bad in [
            "",
            "node",
            "node:0",
            "node:99999",
            ":7443",
            "https://node:7443",
            "a b:1",
        ] {
            assert!(check_grpc_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn space_and_control_fast_path_agrees_with_char() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            let text = format!("a{c}b");
            assert_eq!(
                has_space_or_control(&text),
                c.is_whitespace() || c.is_control(),
                "{b:#04x}"
            );
        }
        assert!(has_space_or_control("a\u{a0}b"));
        assert!(has_space_or_control("a\u{85}b"));
        assert!(!has_space_or_control("één"));
        assert!(check_name("Gemeente\u{7f}").is_err());
        assert!(check_name(&"é".repeat(200)).is_ok());
        assert!(check_name(&"é".repeat(201)).is_err());
    }

    #[test]
    fn addresses() {
        assert!(check_p2p_address("/ip4/127.0.0.1/tcp/4001").is_ok());
        for bad in ["", "/", "ip4/1.2.3.4", "/ip4/ 1", "/ip4//tcp"] {
            assert!(check_p2p_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn region_codes() {
        for good in ["GM0363", "VR13", "JR12", "GM034", "AB1234"] {
            assert!(check_region(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "GM",
            "GM1",
            "gm0363",
            "GM03631",
            "G0363",
            "GMX363",
            "GM 363",
            "ＧＭ0363",
            "GM٠٣٦٣",
        ] {
            assert!(check_region(bad).is_err(), "{bad:?}");
        }
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_regions(&[]).is_ok());
        assert!(check_regions(&codes(&["GM0344", "GM0363", "VR13"])).is_ok());
        assert!(check_regions(&codes(&["GM0363", "GM0344"])).is_err());
        assert!(check_regions(&codes(&["GM0363", "GM0363"])).is_err());
        let many: Vec<String> = (0..=MAX_REGIONS).map(|i| format!("GM{i:04}")).collect();
        assert!(check_regions(&many[..MAX_REGIONS]).is_ok());
        let err = check_regions(&many).unwrap_err();
        assert!(err.to_string().contains("at most 512"), "{err}");
    }

    #[test]
    fn names_and_lists() {
        let p = vec![Purpose::parse("jeugd").unwrap()];
        let a = vec!["/ip4/127.0.0.1/tcp/1".to_string()];
        assert!(check("Gemeente Utrecht", &[Role::Afnemer], &p, &a, "h:1").is_ok());
        assert!(check(" ", &[Role::Afnemer], &p, &a, "h:1").is_err());
        assert!(check("bad\nname", &[Role::Afnemer], &p, &a, "h:1").is_err());
        assert!(check("x", &[], &p, &a, "h:1").is_err());
        assert!(check("x", &[Role::Afnemer], &[], &a, "h:1").is_err());
        assert!(check("x", &[Role::Afnemer], &p, &[], "h:1").is_err());
    }
}
