//! What the kernel's rtnetlink says about a tun/tap interface: one
//! `RTM_GETLINK` request by name, and the parser of its answer.
//!
//! rtnetlink answers for the tender's own network namespace, whatever
//! `/sys` shows (sysfs shows the namespace it was mounted in), and it is
//! the only place that tells whether a tap sends packet-information headers
//! (`TUNGETIFF` reports `IFF_NOFILTER`, the same bit as `IFF_NO_PI`, for
//! every fd without a socket filter). The exchange itself is in `tap`;
//! building the request and parsing the answer are pure, and tested here.

use std::fmt;

/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `RTM_NEWLINK`: the answer to `RTM_GETLINK`.
const RTM_NEWLINK: u16 = 16;
/// `RTM_GETLINK`.
const RTM_GETLINK: u16 = 18;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 1;
/// `IFLA_IFNAME`.
const IFLA_IFNAME: u16 = 3;
/// `IFLA_LINKINFO` (nested).
const IFLA_LINKINFO: u16 = 18;
/// `IFLA_INFO_KIND`, in `IFLA_LINKINFO`.
const IFLA_INFO_KIND: u16 = 1;
/// `IFLA_INFO_DATA` (nested), in `IFLA_LINKINFO`.
const IFLA_INFO_DATA: u16 = 2;
/// `IFLA_TUN_TYPE` (u8: `IFF_TUN` or `IFF_TAP`), in the tun's `IFLA_INFO_DATA`.
const IFLA_TUN_TYPE: u16 = 3;
/// `IFLA_TUN_PI` (u8: frames carry packet information).
const IFLA_TUN_PI: u16 = 4;
/// `IFLA_TUN_VNET_HDR` (u8).
const IFLA_TUN_VNET_HDR: u16 = 5;
/// `IFLA_TUN_MULTI_QUEUE` (u8).
const IFLA_TUN_MULTI_QUEUE: u16 = 7;
/// Attribute type bits that are flags, not the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Size of `struct nlmsghdr`.
const NLMSG_HDR: usize = 16;
/// Size of `struct ifinfomsg`.
const IFINFO: usize = 16;

/// What rtnetlink reports about a tun/tap interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tun {
    /// `IFLA_TUN_TYPE` is `IFF_TAP` (else `IFF_TUN`).
    pub tap: bool,
    /// Frames carry the 4-byte packet-information header (no `IFF_NO_PI`).
    pub pi: bool,
    /// Frames carry a virtio-net header.
    pub vnet_hdr: bool,
    /// A multi-queue device.
    pub multi_queue: bool,
}

/// What the answer says about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `IFLA_INFO_KIND`: `tun` for a tun or tap, `veth`, `bridge`, ...;
    /// `None` for a device without a kind (loopback, physical).
    pub kind: Option<String>,
    /// For a tun or tap: its settings.
    pub tun: Option<Tun>,
}

/// The answer is not what rtnetlink sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(&'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed rtnetlink answer: {}", self.0)
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The interface.
    Link(Link),
    /// The kernel's error (a positive errno: `ENODEV` for no such
    /// interface).
    Error(i32),
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// `RTM_GETLINK` for the interface called `name` (checked by `net`: 1 to
/// 15 bytes, no NUL), with sequence number `seq`.
pub fn request(name: &str, seq: u32) -> Vec<u8> {
    let attr_len = 4 + name.len() + 1;
    let len = NLMSG_HDR + IFINFO + align4(attr_len);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    m.extend_from_slice(&[0; IFINFO]); // AF_UNSPEC, any index
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
    m.extend_from_slice(name.as_bytes());
    m.resize(len, 0);
    m
}

/// The attributes in `b`: `(type without flag bits, payload)`.
fn attrs(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, Malformed> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16_at(b, 0));
        if len < 4 || len > b.len() {
            return Err(Malformed("attribute length"));
        }
        out.push((u16_at(b, 2) & NLA_TYPE_MASK, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

fn flag(payload: &[u8]) -> bool {
    payload.first().is_some_and(|&v| v != 0)
}

/// Parses the answer to [`request`] with sequence number `seq`.
pub fn parse(answer: &[u8], seq: u32) -> Result<Answer, Malformed> {
    if answer.len() < NLMSG_HDR {
        return Err(Malformed("shorter than a message header"));
    }
    let len = u32_at(answer, 0) as usize;
    if len < NLMSG_HDR || len > answer.len() {
        return Err(Malformed("message length"));
    }
    if u32_at(answer, 8) != seq {
        return Err(Malformed("sequence number"));
    }
    let body = &answer[NLMSG_HDR..len];
    match u16_at(answer, 4) {
        NLMSG_ERROR => {
            if body.len() < 4 {
                return Err(Malformed("short error message"));
            }
            let error = u32_at(body, 0) as i32;
            Ok(Answer::Error(-error))
        }
        RTM_NEWLINK => {
            if body.len() < IFINFO {
                return Err(Malformed("short link message"));
            }
            let mut link = Link { kind: None, tun: None };
            for (ty, payload) in attrs(&body[IFINFO..])? {
                if ty != IFLA_LINKINFO {
                    continue;
                }
                let info = attrs(payload)?;
                let kind = info.iter().find(|(t, _)| *t == IFLA_INFO_KIND).map(|(_, p)| {
                    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
                    String::from_utf8_lossy(&p[..end]).into_owned()
                });
                if kind.as_deref() == Some("tun") {
                    let mut tun = Tun::default();
                    if let Some((_, data)) = info.iter().find(|(t, _)| *t == IFLA_INFO_DATA) {
                        for (t, p) in attrs(data)? {
                            match t {
                                IFLA_TUN_TYPE => tun.tap = p.first() == Some(&2),
                                IFLA_TUN_PI => tun.pi = flag(p),
                                IFLA_TUN_VNET_HDR => tun.vnet_hdr = flag(p),
                                IFLA_TUN_MULTI_QUEUE => tun.multi_queue = flag(p),
                                _ => {}
                            }
                        }
                    }
                    link.tun = Some(tun);
                }
                link.kind = kind;
            }
            Ok(Answer::Link(link))
        }
        _ => Err(Malformed("unexpected message type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align4(a.len()), 0);
        a
    }

    fn message(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    fn link(linkinfo: &[u8]) -> Vec<u8> {
        let mut body = vec![0; IFINFO];
        body.extend(attr(IFLA_IFNAME, b"tap0\0"));
        body.extend(attr(4, &1500u32.to_ne_bytes())); // IFLA_MTU
        body.extend(attr(IFLA_LINKINFO | 0x8000, linkinfo));
        message(RTM_NEWLINK, 7, &body)
    }

    fn tun_info(ty: u8, pi: u8, vnet: u8, mq: u8) -> Vec<u8> {
        let mut data = attr(1, &0u32.to_ne_bytes()); // IFLA_TUN_OWNER
        data.extend(attr(IFLA_TUN_TYPE, &[ty]));
        data.extend(attr(IFLA_TUN_PI, &[pi]));
        data.extend(attr(IFLA_TUN_VNET_HDR, &[vnet]));
        data.extend(attr(IFLA_TUN_MULTI_QUEUE, &[mq]));
        let mut info = attr(IFLA_INFO_KIND, b"tun\0");
        info.extend(attr(IFLA_INFO_DATA | 0x8000, &data));
        info
    }

    #[test]
    fn the_request_names_the_interface() {
        let r = request("tap0", 7);
        assert_eq!(r.len(), 16 + 16 + 12);
        assert_eq!(u32_at(&r, 0) as usize, r.len());
        assert_eq!(u16_at(&r, 4), RTM_GETLINK);
        assert_eq!(u32_at(&r, 8), 7);
        assert_eq!(u16_at(&r, 32), 9);
        assert_eq!(u16_at(&r, 34), IFLA_IFNAME);
        assert_eq!(&r[36..41], b"tap0\0");
    }

    #[test]
    fn a_tap_is_recognised_with_its_settings() {
        let a = parse(&link(&tun_info(2, 0, 0, 0)), 7).unwrap();
        let tun = Tun { tap: true, pi: false, vnet_hdr: false, multi_queue: false };
        assert_eq!(a, Answer::Link(Link { kind: Some("tun".into()), tun: Some(tun) }));
        let a = parse(&link(&tun_info(2, 1, 1, 1)), 7).unwrap();
        let tun = Tun { tap: true, pi: true, vnet_hdr: true, multi_queue: true };
        assert_eq!(a, Answer::Link(Link { kind: Some("tun".into()), tun: Some(tun) }));
        let Answer::Link(l) = parse(&link(&tun_info(1, 0, 0, 0)), 7).unwrap() else { panic!() };
        assert!(!l.tun.unwrap().tap, "a tun");
    }

    #[test]
    fn other_links_have_another_kind_or_none() {
        let a = parse(&link(&attr(IFLA_INFO_KIND, b"veth\0")), 7).unwrap();
        assert_eq!(a, Answer::Link(Link { kind: Some("veth".into()), tun: None }));
        let mut body = vec![0; IFINFO];
        body.extend(attr(IFLA_IFNAME, b"lo\0"));
        let a = parse(&message(RTM_NEWLINK, 7, &body), 7).unwrap();
        assert_eq!(a, Answer::Link(Link { kind: None, tun: None }));
    }

    #[test]
    fn errors_are_errnos() {
        let mut body = (-19i32).to_ne_bytes().to_vec();
        body.extend_from_slice(&request("tap9", 7)[..16]);
        assert_eq!(parse(&message(NLMSG_ERROR, 7, &body), 7), Ok(Answer::Error(19)));
    }

    #[test]
    fn malformed_answers_are_refused_without_panicking() {
        let good = link(&tun_info(2, 0, 0, 0));
        assert_eq!(parse(&good, 8), Err(Malformed("sequence number")));
        assert_eq!(parse(&good[..10], 7), Err(Malformed("shorter than a message header")));
        assert_eq!(parse(&good[..good.len() - 4], 7), Err(Malformed("message length")));
        assert_eq!(parse(&message(99, 7, &[]), 7), Err(Malformed("unexpected message type")));
        for cut in 0..good.len() {
            let mut m = good[..cut].to_vec();
            if m.len() >= 4 {
                m[..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            }
            let _ = parse(&m, 7);
        }
        let mut bad = good.clone();
        bad[NLMSG_HDR + IFINFO] = 200; // first attribute's length past the end
        assert_eq!(parse(&bad, 7), Err(Malformed("attribute length")));
    }
}
