//! The tender's pure parts, as a library: validating an image (`image`),
//! laying out guest memory (`layout`), encoding the boot region (`boot`) and
//! finding the clock in the kernel's vDSO (`vdso`).
//!
//! They take bytes and numbers and return values or errors, without touching
//! the process, so that the `tender` binary (`main.rs`, which maps, attaches
//! devices and seals) and the fuzz targets in `fuzz/` run the same code.

#![deny(unsafe_code)]

pub mod boot;
pub mod image;
pub mod layout;
pub mod vdso;

// Linked against musl, the unit tests' harness needs the entry point and
// initialisers too (the binary has its own copy: see src/start.rs).
#[cfg(all(test, tender_musl))]
#[allow(dead_code)]
mod start;
