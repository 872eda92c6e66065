//! Panics in a std guest. The first argument says what to do:
//!
//! * `catch`: panics inside `catch_unwind`, which catches it (destructors
//!   of the unwound frames run), then prints `caught: <message>` and exits 0;
//! * `uncaught`: panics in `main`: std prints its message, exits 101;
//! * `abort`: calls `std::process::abort()`;
//! * `double`: panics in a destructor while unwinding: std aborts.

libos_std::app!();

use std::panic;

struct Noisy(&'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        println!("drop {}", self.0);
    }
}

#[inline(never)]
fn deep(n: u32) -> u32 {
    let _guard = Noisy(if n == 0 { "innermost" } else { "frame" });
    if n == 0 {
        panic!("deep panic at level {n}");
    }
    deep(n - 1) + 1
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "catch" => {
            let r = panic::catch_unwind(|| deep(3));
            let err = r.expect_err("the panic is caught");
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("caught: {msg}");
        }
        "uncaught" => {
            let _guard = Noisy("main");
            deep(2);
        }
        "abort" => {
            println!("aborting");
            std::process::abort();
        }
        "double" => {
            struct PanicsOnDrop;
            impl Drop for PanicsOnDrop {
                fn drop(&mut self) {
                    panic!("second panic, in a destructor");
                }
            }
            let _bomb = PanicsOnDrop;
            panic!("first panic");
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
