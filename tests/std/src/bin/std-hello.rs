//! The smallest std guest: prints, reads its arguments and environment,
//! and exits with the status it is asked for.

libos_std::app!();

fn main() {
    println!("Hello from std!");
    for a in std::env::args().skip(1) {
        println!("arg {a}");
    }
    if let Ok(v) = std::env::var("GREETING") {
        println!("GREETING={v}");
    }
    let code: i32 = std::env::var("EXIT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    std::process::exit(code);
}
