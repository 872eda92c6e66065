//! Crates with C or assembly inside, unmodified, in a std guest: ring's
//! digests and signatures (its randomness from `getrandom`, which the
//! getrandom crate 0.2 asks for through `syscall`), a TLS 1.3 handshake
//! and a message over rustls on ring (in memory, with a self-signed
//! certificate for `localhost` made for these tests: data/), SQLite (its C
//! source, bundled: mutexes, `qsort`, `strcspn`, `dlopen` of nothing) and
//! zstd (C).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

libos_std::app!();

const CERT: &[u8] = include_bytes!("../../data/localhost-cert.pem");
const KEY: &[u8] = include_bytes!("../../data/localhost-key.pem");

fn main() {
    ring_works();
    tls_works();
    sqlite_works();
    let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let z = zstd::encode_all(&data[..], 3).expect("compress");
    let back = zstd::decode_all(&z[..]).expect("decompress");
    let small = z.len() < data.len() / 10;
    println!(
        "zstd: {} bytes, compressed below a tenth: {small}, back the same: {}",
        data.len(),
        back == data
    );
}

fn ring_works() {
    use ring::signature::{self, KeyPair};
    let d = ring::digest::digest(&ring::digest::SHA256, b"hello");
    let hex: String = d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    println!("ring: sha256(hello) starts {hex}");
    let rng = ring::rand::SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key generation");
    let key = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key");
    let sig = key.sign(&rng, b"message").expect("signature");
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        key.public_key().as_ref(),
    );
    println!("ring: signature verifies: {}", public.verify(b"message", sig.as_ref()).is_ok());
}

fn tls_works() {
    let cert = CertificateDer::from_pem_slice(CERT).expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(KEY).expect("key");
    // Deprecated only for lacking post-quantum key exchange, which this
    // handshake between two of its own does not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "localhost".try_into().expect("name");
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
    let mut s = rustls::ServerConnection::new(Arc::new(server)).expect("server");
    c.writer().write_all(b"ping over TLS").expect("queued");
    let mut wire = Vec::new();
    for _ in 0..8 {
        wire.clear();
        c.write_tls(&mut wire).expect("client out");
        s.read_tls(&mut &wire[..]).expect("server in");
        s.process_new_packets().expect("server");
        wire.clear();
        s.write_tls(&mut wire).expect("server out");
        c.read_tls(&mut &wire[..]).expect("client in");
        c.process_new_packets().expect("client");
    }
    let mut got = String::new();
    let _ = s.reader().read_to_string(&mut got);
    println!(
        "rustls: {:?}, server got {got:?}",
        c.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default()
    );
}

fn sqlite_works() {
    let mut db = rusqlite::Connection::open_in_memory().expect("open");
    db.execute("create table t (k integer primary key, v text)", ()).expect("create");
    let tx = db.transaction().expect("transaction");
    for k in 0..1000 {
        tx.execute("insert into t values (?1, ?2)", (k, format!("v{k}"))).expect("insert");
    }
    tx.commit().expect("commit");
    let (n, sum): (i64, i64) =
        db.query_row("select count(*), sum(k) from t", (), |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    let v: String =
        db.query_row("select v from t order by v desc limit 1", (), |r| r.get(0)).unwrap();
    let ext = db.execute_batch("select load_extension('nope')").is_err();
    println!(
        "sqlite: {} {n} rows, sum {sum}, max {v}, extension refused: {ext}",
        rusqlite::version()
    );
}
