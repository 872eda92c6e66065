//! Network configuration from the guest's environment, read at boot.
//!
//! For a net device `NAME` (say `service0`), with `N` its name in upper case:
//!
//! | variable | meaning |
//! |---|---|
//! | `NET_N_IPV4` | static address and prefix, `10.0.0.2/24`; or `dhcp` |
//! | `NET_N_GATEWAY` | default gateway, `10.0.0.1` (static addresses only) |
//! | `NET_N_GATEWAY_MAC` | the gateway's MAC, `02:00:00:00:00:01`: never ARP for it |
//!
//! Without `NET_N_IPV4` the interface configures itself by DHCPv4.
//! A /32 address with a gateway outside it (pod networks: 10.1.2.3/32 via
//! 169.254.1.1) works: the gateway is reached on the link (see
//! [`super::gateway`]).

use core::fmt;
use core::net::Ipv4Addr;

use alloc::format;
use alloc::string::String;

/// How an interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Config {
    /// A fixed address, prefix length and optional default gateway.
    Static {
        /// The address.
        address: Ipv4Addr,
        /// Prefix length, 0..=32.
        prefix: u8,
        /// Default gateway.
        gateway: Option<Ipv4Addr>,
        /// The gateway's MAC, when it is fixed (a permanent neighbour entry
        /// in a pod's namespace): the interface then never ARPs for it.
        gateway_mac: Option<[u8; 6]>,
    },
    /// DHCPv4.
    Dhcp,
}

/// A configuration variable is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: expected {}", self.variable, self.value, self.expected)
    }
}

impl core::error::Error for ConfigError {}

/// The variable `NET_<NAME>_<KEY>` for device `name`.
pub fn variable(name: &str, key: &str) -> String {
    format!("NET_{}_{}", name.to_ascii_uppercase(), key)
}

/// The configuration of device `name`, looking variables up with `get`.
pub fn ipv4_config(
    name: &str,
    get: impl Fn(&str) -> Option<&'static str>,
) -> Result<Ipv4Config, ConfigError> {
    let ip_var = variable(name, "IPV4");
    let gw_var = variable(name, "GATEWAY");
    let mac_var = variable(name, "GATEWAY_MAC");
    let err = |variable: &str, value: &str, expected| ConfigError {
        variable: variable.into(),
        value: value.into(),
        expected,
    };
    let gateway = match get(&gw_var) {
        Some(v) => {
            let gw = v.parse::<Ipv4Addr>().map_err(|_| err(&gw_var, v, "an IPv4 address"))?;
            if !unicast(gw) {
                return Err(err(&gw_var, v, "a unicast address"));
            }
            Some(gw)
        }
        None => None,
    };
    let gateway_mac = match get(&mac_var) {
        Some(v) => Some(parse_mac(v).map_err(|expected| err(&mac_var, v, expected))?),
        None => None,
    };
    match get(&ip_var) {
        None | Some("dhcp") => {
            if let Some(v) = get(&gw_var) {
                return Err(err(&gw_var, v, "no gateway with DHCP (set NET_*_IPV4 too)"));
            }
            if let Some(v) = get(&mac_var) {
                return Err(err(&mac_var, v, "no gateway MAC with DHCP (set NET_*_IPV4 too)"));
            }
            Ok(Ipv4Config::Dhcp)
        }
        Some(v) => {
            let expected = "ADDRESS/PREFIX, e.g. 10.0.0.2/24, or dhcp";
            let (addr, prefix) = v.split_once('/').ok_or_else(|| err(&ip_var, v, expected))?;
            let address = addr.parse::<Ipv4Addr>().map_err(|_| err(&ip_var, v, expected))?;
            let prefix = prefix.parse::<u8>().ok().filter(|p| *p <= 32);
            let prefix = prefix.ok_or_else(|| err(&ip_var, v, expected))?;
            if !unicast(address) {
                return Err(err(&ip_var, v, "a unicast address"));
            }
            if let (None, Some(v)) = (gateway, get(&mac_var)) {
                return Err(err(
                    &mac_var,
                    v,
                    "no gateway MAC without a gateway (set NET_*_GATEWAY)",
                ));
            }
            Ok(Ipv4Config::Static { address, prefix, gateway, gateway_mac })
        }
    }
}

/// Whether an IPv4 address may be an interface's address or a gateway: not
/// unspecified, broadcast or multicast (smoltcp refuses any other as an
/// interface address).
pub(super) fn unicast(address: Ipv4Addr) -> bool {
    !(address.is_unspecified() || address.is_multicast() || address.is_broadcast())
}

/// Parses a unicast MAC address, `aa:bb:cc:dd:ee:ff`; the error says what
/// was expected.
fn parse_mac(v: &str) -> Result<[u8; 6], &'static str> {
    let expected = "a MAC address, six hex bytes such as 02:00:00:00:00:01";
    let mut mac = [0u8; 6];
    let mut parts = v.split(':');
    for byte in &mut mac {
        // Two hex digits exactly (from_str_radix alone would take "+e").
        let part =
            parts.next().filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        *byte = u8::from_str_radix(part.ok_or(expected)?, 16).map_err(|_| expected)?;
    }
    if parts.next().is_some() {
        return Err(expected);
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err("a unicast MAC address (not zero, multicast or broadcast)");
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<&'static str> {
        move |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }

    #[test]
    fn static_with_gateway() {
        let cfg = ipv4_config(
            "service0",
            env(&[("NET_SERVICE0_IPV4", "10.0.0.2/24"), ("NET_SERVICE0_GATEWAY", "10.0.0.1")]),
        );
        assert_eq!(
            cfg,
            Ok(Ipv4Config::Static {
                address: Ipv4Addr::new(10, 0, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                gateway_mac: None,
            })
        );
    }

    #[test]
    fn addresses_and_gateways_must_be_unicast() {
        for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1"] {
            let ip = format!("{bad}/24").leak();
            let cfg = ipv4_config("eth0", env(vec![("NET_ETH0_IPV4", &*ip)].leak()));
            assert_eq!(cfg.unwrap_err().expected, "a unicast address", "{bad}");
            let cfg = ipv4_config(
                "eth0",
                env(vec![("NET_ETH0_IPV4", "10.0.0.2/24"), ("NET_ETH0_GATEWAY", bad)].leak()),
            );
            let e = cfg.unwrap_err();
            assert_eq!(
                (e.variable.as_str(), e.expected),
                ("NET_ETH0_GATEWAY", "a unicast address")
            );
        }
    }

    #[test]
    fn dhcp_by_default_or_by_name() {
        assert_eq!(ipv4_config("service0", env(&[])), Ok(Ipv4Config::Dhcp));
        assert_eq!(ipv4_config("eth1", env(&[("NET_ETH1_IPV4", "dhcp")])), Ok(Ipv4Config::Dhcp));
    }

    #[test]
    fn pod_network_slash_32() {
        let cfg = ipv4_config(
            "service0",
            env(&[("NET_SERVICE0_IPV4", "10.1.2.3/32"), ("NET_SERVICE0_GATEWAY", "169.254.1.1")]),
        )
        .unwrap();
        assert!(matches!(cfg, Ipv4Config::Static { prefix: 32, gateway: Some(_), .. }));
    }

    #[test]
    fn pod_network_with_a_fixed_gateway_mac() {
        let cfg = ipv4_config(
            "service0",
            env(&[
                ("NET_SERVICE0_IPV4", "10.1.2.3/32"),
                ("NET_SERVICE0_GATEWAY", "169.254.1.1"),
                ("NET_SERVICE0_GATEWAY_MAC", "ee:EE:0a:00:ff:01"),
            ]),
        );
        assert_eq!(
            cfg,
            Ok(Ipv4Config::Static {
                address: Ipv4Addr::new(10, 1, 2, 3),
                prefix: 32,
                gateway: Some(Ipv4Addr::new(169, 254, 1, 1)),
                gateway_mac: Some([0xee, 0xee, 0x0a, 0x00, 0xff, 0x01]),
            })
        );
    }

    #[test]
    fn malformed_gateway_macs_name_the_variable() {
        let syntax = "a MAC address, six hex bytes such as 02:00:00:00:00:01";
        let unicast = "a unicast MAC address (not zero, multicast or broadcast)";
        for (bad, expected) in [
            ("", syntax),
            ("ee:ee:ee:ee:ee", syntax),
            ("ee:ee:ee:ee:ee:ee:ee", syntax),
            ("ee-ee-ee-ee-ee-ee", syntax),
            ("e:ee:ee:ee:ee:eee", syntax),
            ("ee:ee:ee:ee:ee:gg", syntax),
            ("+e:ee:ee:ee:ee:ee", syntax),
            ("ff:ff:ff:ff:ff:ff", unicast),
            ("01:00:5e:00:00:01", unicast),
            ("00:00:00:00:00:00", unicast),
        ] {
            let leaked: &'static str = alloc::boxed::Box::leak(bad.into());
            let pairs: &'static [(&str, &str)] = alloc::boxed::Box::leak(
                alloc::vec![
                    ("NET_SERVICE0_IPV4", "10.1.2.3/32"),
                    ("NET_SERVICE0_GATEWAY", "169.254.1.1"),
                    ("NET_SERVICE0_GATEWAY_MAC", leaked),
                ]
                .into_boxed_slice(),
            );
            let e = ipv4_config("service0", env(pairs)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("NET_SERVICE0_GATEWAY_MAC={bad:?}: expected {expected}")
            );
        }
    }

    #[test]
    fn a_gateway_mac_needs_a_static_gateway() {
        let e = ipv4_config(
            "service0",
            env(&[
                ("NET_SERVICE0_IPV4", "10.1.2.3/32"),
                ("NET_SERVICE0_GATEWAY_MAC", "ee:ee:ee:ee:ee:ee"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "NET_SERVICE0_GATEWAY_MAC=\"ee:ee:ee:ee:ee:ee\": expected no gateway MAC without a \
             gateway (set NET_*_GATEWAY)"
        );
        let e = ipv4_config("service0", env(&[("NET_SERVICE0_GATEWAY_MAC", "ee:ee:ee:ee:ee:ee")]))
            .unwrap_err();
        assert_eq!(e.variable, "NET_SERVICE0_GATEWAY_MAC");
        assert_eq!(e.expected, "no gateway MAC with DHCP (set NET_*_IPV4 too)");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for bad in ["10.0.0.2", "10.0.0.2/33", "10.0.0/24", "x/24", "0.0.0.0/8", "224.0.0.1/4"] {
            let leaked: &'static str = alloc::boxed::Box::leak(bad.into());
            let pairs: &'static [(&str, &str)] = alloc::boxed::Box::leak(
                alloc::vec![("NET_SERVICE0_IPV4", leaked)].into_boxed_slice(),
            );
            let e = ipv4_config("service0", env(pairs)).unwrap_err();
            assert_eq!(e.variable, "NET_SERVICE0_IPV4", "{bad}");
        }
        let e = ipv4_config(
            "service0",
            env(&[("NET_SERVICE0_IPV4", "10.0.0.2/24"), ("NET_SERVICE0_GATEWAY", "nope")]),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "NET_SERVICE0_GATEWAY=\"nope\": expected an IPv4 address");
    }
}
