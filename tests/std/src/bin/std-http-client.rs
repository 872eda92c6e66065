//! An HTTP client from crates.io, ureq (blocking, its own HTTP/1.1 code,
//! connection pool, JSON through serde_json), talking to a server of the
//! same guest (a thread per connection) over the guest's loopback
//! (127.0.0.1): a GET, a JSON POST echoed back, a 404, on connections the
//! client keeps alive; then a connection refused on a port nobody listens
//! on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

libos_std::app!();

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let quit = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let (q, n) = (quit.clone(), served.clone());
    let server = std::thread::spawn(move || {
        let mut workers = Vec::new();
        for stream in listener.incoming() {
            if q.load(Ordering::SeqCst) {
                break;
            }
            let (q, n) = (q.clone(), n.clone());
            let stream = stream.unwrap();
            workers.push(std::thread::spawn(move || serve(stream, &q, &n)));
        }
        let connections = workers.len();
        for w in workers {
            w.join().unwrap();
        }
        connections
    });
    let base = format!("http://127.0.0.1:{port}");
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();

    let mut r = agent.get(format!("{base}/hello")).call().unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    println!("GET /hello: {} {body:?}", r.status());

    let sent = serde_json::json!({"name": "nabla", "items": [1, 2, 3]});
    let mut r = agent.post(format!("{base}/echo")).send_json(&sent).unwrap();
    let back: serde_json::Value = r.body_mut().read_json().unwrap();
    println!("POST /echo: {} equal {}", r.status(), back == sent);

    let mut r = agent.get(format!("{base}/missing")).call().unwrap();
    println!("GET /missing: {} {:?}", r.status(), r.body_mut().read_to_string().unwrap());

    let mut r = agent.get(format!("{base}/quit")).call().unwrap();
    println!("GET /quit: {} {:?}", r.status(), r.body_mut().read_to_string().unwrap());
    drop(agent);
    let connections = server.join().unwrap();
    println!("server: {} requests on {connections} connection(s)", served.load(Ordering::SeqCst));

    // Nobody listens there any more.
    match ureq::get(format!("{base}/again")).call() {
        Ok(r) => println!("closed port: answered {}", r.status()),
        Err(e) => println!("closed port: {}", refused(&e)),
    }
}

/// Whether the error is a refused connection.
fn refused(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("{:?}", io.kind()),
        other => format!("other: {other}"),
    }
}

/// Serves the requests of one connection until the client closes it,
/// counting them in `served`; `/quit` sets `quit` and wakes the accepting
/// thread with a connection of its own.
fn serve(stream: TcpStream, quit: &AtomicBool, served: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap().to_string(), parts.next().unwrap().to_string());
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        served.fetch_add(1, Ordering::SeqCst);
        let (status, payload, kind) = match (method.as_str(), path.as_str()) {
            ("GET", "/hello") => ("200 OK", b"hello from the server thread".to_vec(), "text/plain"),
            ("POST", "/echo") => ("200 OK", body, "application/json"),
            ("GET", "/quit") => ("200 OK", b"bye".to_vec(), "text/plain"),
            _ => ("404 Not Found", b"no such page".to_vec(), "text/plain"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        out.write_all(head.as_bytes()).unwrap();
        out.write_all(&payload).unwrap();
        if path == "/quit" {
            quit.store(true, Ordering::SeqCst);
            let port = out.local_addr().unwrap().port();
            drop(TcpStream::connect(("127.0.0.1", port)));
        }
    }
}
