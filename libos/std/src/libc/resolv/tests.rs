use super::*;
use std::collections::VecDeque;
use std::vec;

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// A reply to `name`'s A query with `id`, `flags` (QR and RD set by the
/// caller's choice), and `answers` (owner, type, rdata), uncompressed.
fn reply(id: u16, flags: u16, name: &str, answers: &[(&str, u16, Vec<u8>)]) -> Vec<u8> {
    reply_to(Question::A, id, flags, name, answers)
}

/// [`reply`] to a query of `question`.
fn reply_to(
    question: Question,
    id: u16,
    flags: u16,
    name: &str,
    answers: &[(&str, u16, Vec<u8>)],
) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&wire_name(name));
    p.extend_from_slice(&question.qtype().to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    for (owner, ty, rdata) in answers {
        p.extend_from_slice(&wire_name(owner));
        p.extend_from_slice(&ty.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        p.extend_from_slice(rdata);
    }
    p
}

const OK: u16 = 0x8180;

fn a(owner: &str, ip: Ipv4Addr) -> (&str, u16, Vec<u8>) {
    (owner, 1, ip.octets().to_vec())
}

fn cname<'a>(owner: &'a str, target: &str) -> (&'a str, u16, Vec<u8>) {
    (owner, 5, wire_name(target))
}

#[test]
fn resolv_conf_is_read_as_glibc_reads_it() {
    let c = Conf::parse(
        b"# generated\nnameserver 10.0.0.53\nnameserver fd00::1\nnameserver 10.0.0.54 # x\n\
          search svc.cluster.local cluster.local.\n; comment\n\
          options ndots:5 timeout:2 attempts:3 rotate\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n",
    );
    assert_eq!(c.servers, [ip(10, 0, 0, 53), ip(10, 0, 0, 54), ip(1, 1, 1, 1)]);
    assert_eq!(c.search, ["svc.cluster.local", "cluster.local"]);
    assert_eq!((c.ndots, c.timeout, c.attempts), (5, Duration::from_secs(2), 3));
    let c = Conf::parse(b"search a b\ndomain example.org\noptions ndots:99 timeout:0 attempts:9\n");
    assert_eq!(c.search, ["example.org"], "the last of search and domain wins");
    assert_eq!((c.ndots, c.timeout, c.attempts), (15, Duration::from_secs(1), 5));
    assert_eq!(Conf::parse(b"\xff\xfe garbage\n\n"), Conf::default());
    assert_eq!(Conf::default().timeout, Duration::from_secs(5));
}

#[test]
fn hosts_lines_give_addresses_in_order() {
    let hosts = b"127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
                  10.0.0.2\tdb.svc db # the database\n10.0.0.3 DB\n# 10.0.0.9 db\nbad line db\n\
                  10.0.0.2 db\n";
    let (canon, addrs) = hosts_lookup(hosts, "db").unwrap();
    assert_eq!(canon, "db.svc");
    assert_eq!(addrs, [IpAddr::V4(ip(10, 0, 0, 2)), IpAddr::V4(ip(10, 0, 0, 3))]);
    assert_eq!(hosts_lookup(hosts, "DB.svc.").unwrap().1, [IpAddr::V4(ip(10, 0, 0, 2))]);
    assert_eq!(hosts_lookup(hosts, "localhost").unwrap().1.len(), 2);
    assert_eq!(hosts_lookup(hosts, "the"), None, "comments are not names");
    assert_eq!(hosts_lookup(hosts, "bad"), None);
}

#[test]
fn names_are_tried_as_res_search_does() {
    let c = Conf {
        search: vec!["ns.svc.cluster.local".into(), "cluster.local".into()],
        ndots: 2,
        ..Conf::default()
    };
    assert_eq!(candidates("db", &c), ["db.ns.svc.cluster.local", "db.cluster.local", "db"]);
    assert_eq!(
        candidates("a.b.c", &c),
        ["a.b.c", "a.b.c.ns.svc.cluster.local", "a.b.c.cluster.local"]
    );
    assert_eq!(candidates("db.", &c), ["db"]);
    assert!(valid_name("a-b.example.com.") && !valid_name("a..b") && !valid_name("a b"));
    assert!(!valid_name(&"x".repeat(64)) && !valid_name(""));
    let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
    assert!(valid_name(&long) && !valid_name(&(long.clone() + "e")));
}

#[test]
fn queries_are_well_formed() {
    let q = query(0x1234, "Db.Example.", Question::A);
    assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&q[12..], b"\x02db\x07example\x00\x00\x01\x00\x01");
}

#[test]
fn answers_and_cname_chains() {
    let p = reply(7, OK, "db", &[a("db", ip(10, 0, 0, 2)), a("db", ip(10, 0, 0, 3))]);
    assert_eq!(
        parse_reply(&p, 7, "DB", Question::A),
        Some(Reply::Addresses("db".into(), vec![ip(10, 0, 0, 2), ip(10, 0, 0, 3)]))
    );
    let p = reply(
        7,
        OK,
        "www",
        &[
            cname("www", "web"),
            a("other", ip(1, 2, 3, 4)),
            cname("web", "real.host"),
            a("real.host", ip(9, 9, 9, 9)),
        ],
    );
    assert_eq!(
        parse_reply(&p, 7, "www", Question::A),
        Some(Reply::Addresses("real.host".into(), vec![ip(9, 9, 9, 9)]))
    );
    // A chain that ends without an address, and a CNAME loop.
    let p = reply(7, OK, "www", &[cname("www", "gone")]);
    assert_eq!(parse_reply(&p, 7, "www", Question::A), Some(Reply::NoData));
    let p = reply(7, OK, "x", &[cname("x", "y"), cname("y", "x")]);
    assert_eq!(parse_reply(&p, 7, "x", Question::A), Some(Reply::NoData));
    // Records of other types and classes are skipped.
    let p = reply(
        7,
        OK,
        "db",
        &[("db", 28, vec![0; 16]), ("db", 16, b"\x03abc".to_vec()), a("db", ip(1, 1, 1, 1))],
    );
    assert_eq!(
        parse_reply(&p, 7, "db", Question::A),
        Some(Reply::Addresses("db".into(), vec![ip(1, 1, 1, 1)]))
    );
}

#[test]
fn compressed_names_are_followed() {
    // The answer's owner points at the question's name (offset 12).
    let mut p = reply(9, OK, "db.svc", &[]);
    p[7] = 2;
    p.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4]);
    // CNAME target: "x" then a pointer to "svc" inside the question.
    p.extend_from_slice(&[1, b'x', 0xc0, 15]);
    p.extend_from_slice(&[1, b'x', 0xc0, 15, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 8, 7]);
    assert_eq!(
        parse_reply(&p, 9, "db.svc", Question::A),
        Some(Reply::Addresses("x.svc".into(), vec![ip(10, 9, 8, 7)]))
    );
}

#[test]
fn rcodes_and_truncation() {
    assert_eq!(
        parse_reply(&reply(1, 0x8183, "no", &[]), 1, "no", Question::A),
        Some(Reply::NxDomain)
    );
    assert_eq!(
        parse_reply(&reply(1, 0x8182, "no", &[]), 1, "no", Question::A),
        Some(Reply::ServerFailed)
    );
    assert_eq!(
        parse_reply(&reply(1, 0x8185, "no", &[]), 1, "no", Question::A),
        Some(Reply::ServerFailed)
    );
    assert_eq!(
        parse_reply(&reply(1, 0x8380, "db", &[]), 1, "db", Question::A),
        Some(Reply::Truncated),
        "TC"
    );
    assert_eq!(parse_reply(&reply(1, OK, "db", &[]), 1, "db", Question::A), Some(Reply::NoData));
}

#[test]
fn replies_to_something_else_are_dropped() {
    let good = reply(5, OK, "db", &[a("db", ip(1, 2, 3, 4))]);
    assert!(parse_reply(&good, 5, "db", Question::A).is_some());
    assert_eq!(parse_reply(&good, 6, "db", Question::A), None, "another id");
    assert_eq!(parse_reply(&good, 5, "dc", Question::A), None, "another question");
    let mut q = good.clone();
    q[2] &= 0x7f;
    assert_eq!(parse_reply(&q, 5, "db", Question::A), None, "a query, not a reply");
    let mut q = good.clone();
    q[5] = 2;
    assert_eq!(parse_reply(&q, 5, "db", Question::A), None, "two questions");
    let mut q = good.clone();
    q[12 + 4] = 28;
    assert_eq!(parse_reply(&q, 5, "db", Question::A), None, "an AAAA question");
    // Every truncation of a good reply is dropped, not misread.
    for n in 0..good.len() {
        assert_eq!(parse_reply(&good[..n], 5, "db", Question::A), None, "cut at {n}");
    }
}

#[test]
fn hostile_names_end() {
    let mut out = Vec::new();
    // A pointer to itself, two pointing at each other, a forward pointer
    // past the end, a reserved label type, an overlong name.
    assert_eq!(read_name(&[0xc0, 0], 0, &mut out), None);
    assert_eq!(read_name(&[0xc0, 2, 0xc0, 0], 0, &mut out), None);
    assert_eq!(read_name(&[0xc0, 9], 0, &mut out), None);
    assert_eq!(read_name(&[0x40, 0], 0, &mut out), None);
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.push(0);
    assert_eq!(read_name(&long, 0, &mut out), None);
    // A loop through labels: "a" then back to the start, forever.
    assert_eq!(read_name(&[1, b'a', 0xc0, 0], 0, &mut out), None);
    // The same answer record claimed 65535 times in a small packet.
    let mut p = reply(3, OK, "db", &[a("db", ip(1, 2, 3, 4))]);
    p[6] = 0xff;
    p[7] = 0xff;
    assert_eq!(parse_reply(&p, 3, "db", Question::A), None);
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let good = reply(5, OK, "db", &[cname("db", "x.db"), a("x.db", ip(1, 2, 3, 4))]);
    for _ in 0..20_000 {
        let mut p = good.clone();
        for _ in 0..(next() % 6) {
            let i = (next() as usize) % p.len();
            p[i] = next() as u8;
        }
        p.truncate(12 + (next() as usize) % (p.len() - 11));
        let _ = parse_reply(&p, 5, "db", Question::A);
        let len = (next() % 64) as usize;
        let g: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse_reply(
            &g,
            u16::from_be_bytes([g.first().copied().unwrap_or(0), 0]),
            "db",
            Question::A,
        );
    }
}

/// A transport that answers from a script: for each exchange, the
/// datagrams the server sends (in order), `None` for silence; for each
/// over TCP, the reply (`None`: none came whole).
struct Script {
    replies: VecDeque<(Ipv4Addr, Vec<Vec<u8>>)>,
    tcp: VecDeque<(Ipv4Addr, Option<Vec<u8>>)>,
    asked: Vec<(Ipv4Addr, String)>,
    next_id: u16,
}

impl Script {
    fn new(replies: Vec<(Ipv4Addr, Vec<Vec<u8>>)>) -> Self {
        Self { replies: replies.into(), tcp: VecDeque::new(), asked: Vec::new(), next_id: 100 }
    }

    /// Notes that `query`'s name was asked of `server` (after `how`).
    fn note(&mut self, server: Ipv4Addr, query: &[u8], how: &str) {
        let mut name = Vec::new();
        read_name(query, 12, &mut name).unwrap();
        self.asked.push((server, std::format!("{how}{}", name_text(&name))));
    }
}

impl Transport for Script {
    fn exchange(
        &mut self,
        server: Ipv4Addr,
        query: &[u8],
        _timeout: Duration,
        accept: &mut dyn FnMut(&[u8]) -> Option<Reply>,
    ) -> Option<Reply> {
        self.note(server, query, "");
        let (expected, datagrams) = self.replies.pop_front().expect("an unexpected query");
        assert_eq!(server, expected);
        datagrams.iter().find_map(|d| accept(d))
    }

    fn exchange_tcp(
        &mut self,
        server: Ipv4Addr,
        query: &[u8],
        _timeout: Duration,
        accept: &mut dyn FnMut(&[u8]) -> Option<Reply>,
    ) -> Option<Reply> {
        self.note(server, query, "tcp ");
        let (expected, reply) = self.tcp.pop_front().expect("an unexpected TCP query");
        assert_eq!(server, expected);
        accept(&reply?)
    }

    fn id(&mut self) -> u16 {
        self.next_id += 1;
        self.next_id
    }
}

#[test]
fn search_domains_are_walked_until_an_answer() {
    let s1 = ip(10, 0, 0, 53);
    let conf =
        Conf { servers: vec![s1], search: vec!["ns.svc".into(), "svc".into()], ..Conf::default() };
    let mut t = Script::new(vec![
        (s1, vec![reply(101, 0x8183, "db.ns.svc", &[])]),
        // A spoofed reply with the wrong id first: dropped.
        (
            s1,
            vec![
                reply(1, OK, "db.svc", &[a("db.svc", ip(6, 6, 6, 6))]),
                reply(102, OK, "db.svc", &[a("db.svc", ip(10, 1, 1, 1))]),
            ],
        ),
    ]);
    assert_eq!(resolve("db", &conf, &mut t), Ok(("db.svc".into(), vec![ip(10, 1, 1, 1)])));
    assert_eq!(t.asked, [(s1, "db.ns.svc".into()), (s1, "db.svc".into())]);
}

#[test]
fn silence_is_again_and_servers_are_tried_in_turn() {
    let (s1, s2) = (ip(10, 0, 0, 53), ip(10, 0, 0, 54));
    let conf = Conf { servers: vec![s1, s2], attempts: 2, ..Conf::default() };
    let mut t = Script::new(vec![(s1, vec![]), (s2, vec![]), (s1, vec![]), (s2, vec![])]);
    assert_eq!(resolve("quiet.example", &conf, &mut t), Err(Failure::Again));
    // The first server fails, the second answers.
    let mut t = Script::new(vec![
        (s1, vec![reply(101, 0x8182, "db.example", &[])]),
        (s2, vec![reply(102, OK, "db.example", &[a("db.example", ip(1, 2, 3, 4))])]),
    ]);
    assert_eq!(resolve("db.example", &conf, &mut t).unwrap().1, [ip(1, 2, 3, 4)]);
    // Every server fails every time.
    let fail = |id| (if id % 2 == 1 { s1 } else { s2 }, vec![reply(id, 0x8182, "x.example", &[])]);
    let mut t = Script::new((101..105).map(fail).collect());
    assert_eq!(resolve("x.example", &conf, &mut t), Err(Failure::Again));
}

#[test]
fn nxdomain_and_nodata_are_told_apart() {
    let s1 = ip(10, 0, 0, 53);
    let conf = Conf { servers: vec![s1], search: vec!["svc".into()], ..Conf::default() };
    let mut t = Script::new(vec![
        (s1, vec![reply(101, 0x8183, "no.svc", &[])]),
        (s1, vec![reply(102, 0x8183, "no", &[])]),
    ]);
    assert_eq!(resolve("no", &conf, &mut t), Err(Failure::NoName));
    let mut t = Script::new(vec![
        (s1, vec![reply(101, OK, "v6.svc", &[])]),
        (s1, vec![reply(102, 0x8183, "v6", &[])]),
    ]);
    assert_eq!(resolve("v6", &conf, &mut t), Err(Failure::NoData));
    let mut t = Script::new(vec![]);
    assert_eq!(resolve("a b", &conf, &mut t), Err(Failure::NoName), "not asked");
    assert_eq!(resolve("db", &Conf::default(), &mut t), Err(Failure::NoName), "no server");
}

fn ptr<'a>(owner: &'a str, target: &str) -> (&'a str, u16, Vec<u8>) {
    (owner, 12, wire_name(target))
}

#[test]
fn addresses_get_their_names_from_ptr_records() {
    const ARPA: &str = "7.0.0.10.in-addr.arpa";
    let q = query(9, ARPA, Question::Ptr);
    assert_eq!(&q[q.len() - 4..], &[0, 12, 0, 1], "type PTR, class IN");
    let p = reply_to(Question::Ptr, 9, OK, ARPA, &[ptr(ARPA, "web.svc.test")]);
    assert_eq!(
        parse_reply(&p, 9, ARPA, Question::Ptr),
        Some(Reply::Names(vec!["web.svc.test".into()]))
    );
    // The same bytes answer no A question, and an A record is no name.
    assert_eq!(parse_reply(&p, 9, ARPA, Question::A), None, "another question");
    let p = reply_to(Question::Ptr, 9, OK, ARPA, &[a(ARPA, ip(1, 2, 3, 4))]);
    assert_eq!(parse_reply(&p, 9, ARPA, Question::Ptr), Some(Reply::NoData));
    // RFC 2317: the name is a CNAME into a delegated zone.
    let p = reply_to(
        Question::Ptr,
        9,
        OK,
        ARPA,
        &[cname(ARPA, "7.0-63.0.0.10.in-addr.arpa"), ptr("7.0-63.0.0.10.in-addr.arpa", "h.test")],
    );
    assert_eq!(parse_reply(&p, 9, ARPA, Question::Ptr), Some(Reply::Names(vec!["h.test".into()])));
    // A PTR whose name runs past its record is malformed.
    let mut p = reply_to(Question::Ptr, 9, OK, ARPA, &[ptr(ARPA, "web.svc.test")]);
    let rdlen = p.len() - 14 - 2;
    p[rdlen..rdlen + 2].copy_from_slice(&3u16.to_be_bytes());
    assert_eq!(parse_reply(&p, 9, ARPA, Question::Ptr), None);
}

#[test]
fn reverse_asks_the_in_addr_arpa_name_as_it_is() {
    let s1 = ip(10, 0, 0, 53);
    let conf = Conf { servers: vec![s1], search: vec!["svc".into()], ..Conf::default() };
    let arpa = "8.0.0.10.in-addr.arpa";
    let mut t = Script::new(vec![(
        s1,
        vec![reply_to(Question::Ptr, 101, OK, arpa, &[ptr(arpa, "a.test"), ptr(arpa, "b.test")])],
    )]);
    assert_eq!(reverse(IpAddr::V4(ip(10, 0, 0, 8)), &conf, &mut t), Ok("a.test".into()));
    assert_eq!(t.asked, [(s1, arpa.into())], "no search domain");
    let mut t = Script::new(vec![(s1, vec![reply_to(Question::Ptr, 101, 0x8183, arpa, &[])])]);
    assert_eq!(reverse(IpAddr::V4(ip(10, 0, 0, 8)), &conf, &mut t), Err(Failure::NoName));
    let mut t = Script::new(vec![(s1, vec![reply_to(Question::Ptr, 101, OK, arpa, &[])])]);
    assert_eq!(reverse(IpAddr::V4(ip(10, 0, 0, 8)), &conf, &mut t), Err(Failure::NoData));
    let mut t = Script::new(vec![(s1, vec![]), (s1, vec![])]);
    assert_eq!(reverse(IpAddr::V4(ip(10, 0, 0, 8)), &conf, &mut t), Err(Failure::Again));
    assert_eq!(
        reverse(IpAddr::V4(ip(10, 0, 0, 8)), &Conf::default(), &mut t),
        Err(Failure::NoName)
    );
}

#[test]
fn arpa_names_are_reversed_octets_or_nibbles() {
    let name = |a: &str| arpa_name(a.parse().unwrap());
    assert_eq!(name("10.0.0.7"), "7.0.0.10.in-addr.arpa");
    assert_eq!(name("::ffff:192.0.2.1"), "1.2.0.192.in-addr.arpa", "IPv4-mapped");
    assert_eq!(
        name("2001:db8::567:89ab"),
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
    assert!(valid_name(&name("2001:db8::567:89ab")));
}

#[test]
fn the_hosts_file_names_an_address_by_its_first_line() {
    let hosts = b"127.0.0.1 localhost\n# 10.0.0.2 commented\n10.0.0.2\tdb.svc db\n\
                  10.0.0.2 other\n::1 ip6-localhost\n10.0.0.3\n";
    let name = |a: &str| hosts_name_of(hosts, a.parse().unwrap());
    assert_eq!(name("10.0.0.2").as_deref(), Some("db.svc"));
    assert_eq!(name("::1").as_deref(), Some("ip6-localhost"));
    assert_eq!(name("10.0.0.3"), None, "a line without a name");
    assert_eq!(name("10.0.0.9"), None);
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let (s1, s2) = (ip(10, 0, 0, 53), ip(10, 0, 0, 54));
    let conf = Conf { servers: vec![s1, s2], attempts: 1, ..Conf::default() };
    let many: Vec<_> = (1..=40).map(|i| a("big.test", ip(10, 1, 0, i))).collect();
    // The same id over TCP: the whole answer.
    let mut t = Script::new(vec![(s1, vec![reply(101, 0x8380, "big.test", &many[..20])])]);
    t.tcp.push_back((s1, Some(reply(101, OK, "big.test", &many))));
    let (_, addrs) = resolve("big.test", &conf, &mut t).unwrap();
    assert_eq!(addrs.len(), 40);
    assert_eq!(t.asked, [(s1, "big.test".into()), (s1, "tcp big.test".into())]);
    // TCP fails (or is truncated again): the next server, over UDP.
    let mut t = Script::new(vec![
        (s1, vec![reply(101, 0x8380, "big.test", &[])]),
        (s2, vec![reply(102, OK, "big.test", &many[..1])]),
    ]);
    t.tcp.push_back((s1, None));
    assert_eq!(resolve("big.test", &conf, &mut t).unwrap().1, [ip(10, 1, 0, 1)]);
    let mut t = Script::new(vec![
        (s1, vec![reply(101, 0x8380, "big.test", &[])]),
        (s2, vec![reply(102, 0x8380, "big.test", &[])]),
    ]);
    t.tcp.push_back((s1, Some(reply(101, 0x8380, "big.test", &[]))));
    t.tcp.push_back((s2, Some(reply(999, OK, "big.test", &many))));
    assert_eq!(resolve("big.test", &conf, &mut t), Err(Failure::Again), "another id over TCP");
}
