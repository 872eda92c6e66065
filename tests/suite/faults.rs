//! Guests that fault, panic or exhaust their heap: each ends the way
//! `docs/design.md` says, never by corrupting memory and running on.

mod support;

use support::{SIGSEGV, run};

const FAULTS: &str = env!("CARGO_BIN_EXE_guest-faults");

fn assert_segv(mode: &str) {
    let out = run(&[FAULTS, mode]);
    assert_eq!(out.signal(), Some(SIGSEGV), "{mode}: expected SIGSEGV: {out:#?}");
    assert_eq!(out.stdout, format!("fault: {mode}\n"), "{mode}: {out:#?}");
}

#[test]
fn write_to_address_8_faults() {
    assert_segv("null");
}

#[test]
fn write_far_beyond_guest_memory_faults() {
    assert_segv("far");
}

#[test]
fn write_into_own_text_faults() {
    assert_segv("text");
}

#[test]
fn calling_code_in_data_faults() {
    assert_segv("exec-data");
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    // The guest checks each frame against the stack's bottom: reaching a
    // frame below it (into the heap) prints "no guard" and exits 3.
    assert_segv("stack");
}

#[test]
fn panic_prints_message_and_location_and_exits_255() {
    let out = run(&[FAULTS, "panic"]);
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert!(out.stdout.contains("guest panicked at tests/guests/faults.rs:"), "{out:#?}");
    assert!(out.stdout.contains("deliberate panic number 42\n"), "{out:#?}");
}

#[test]
fn heap_exhaustion_exits_255_with_a_clear_message() {
    let out = run(&["--mem", "32", FAULTS, "oom"]);
    assert_eq!(out.code(), Some(255), "{out:#?}");
    assert!(out.stdout.contains("memory allocation of 8388608 bytes failed"), "{out:#?}");
    assert!(out.stdout.contains("libos: out of memory: the heap ("), "{out:#?}");
    assert!(out.stdout.contains("--mem"), "{out:#?}");
}
