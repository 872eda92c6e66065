//! The tender refuses malformed images with status 1 and a message naming
//! the file and the check. Each fixture is the real `hello` image with one
//! field changed, generated here so that it follows the current build.

mod support;

use std::path::PathBuf;

use support::{TempDir, run, workspace_bin};

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_TLS: u32 = 7;

/// A copy of the hello image that a test can patch.
struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn hello() -> Self {
        Self { bytes: std::fs::read(workspace_bin("hello")).unwrap() }
    }

    fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.bytes[off..off + 2].try_into().unwrap())
    }

    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes[off..off + 4].try_into().unwrap())
    }

    fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.bytes[off..off + 8].try_into().unwrap())
    }

    fn set16(&mut self, off: usize, v: u16) -> &mut Self {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn set32(&mut self, off: usize, v: u32) -> &mut Self {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn set64(&mut self, off: usize, v: u64) -> &mut Self {
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
        self
    }

    /// Offset of program header `i`.
    fn ph(&self, i: usize) -> usize {
        self.u64_at(32) as usize + i * 56
    }

    fn phnum(&self) -> usize {
        usize::from(self.u16_at(56))
    }

    /// Index of the first program header of `p_type` whose flags contain `flags`.
    fn find(&self, p_type: u32, flags: u32) -> usize {
        (0..self.phnum())
            .find(|&i| {
                self.u32_at(self.ph(i)) == p_type && self.u32_at(self.ph(i) + 4) & flags == flags
            })
            .unwrap_or_else(|| panic!("no program header of type {p_type} with flags {flags}"))
    }

    fn text(&self) -> usize {
        self.find(PT_LOAD, 1)
    }

    fn data(&self) -> usize {
        self.find(PT_LOAD, 2)
    }

    fn rodata(&self) -> usize {
        (0..self.phnum())
            .find(|&i| self.u32_at(self.ph(i)) == PT_LOAD && self.u32_at(self.ph(i) + 4) == 4)
            .unwrap()
    }

    /// File offset of the first nabla note (the ABI note), then the manifest.
    fn notes(&self) -> usize {
        self.u64_at(self.ph(self.find(PT_NOTE, 0)) + 8) as usize
    }

    fn write(&self, dir: &TempDir, name: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, &self.bytes).unwrap();
        path
    }
}

// Field offsets in a program header.
const P_FLAGS: usize = 4;
const P_OFFSET: usize = 8;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;
const P_ALIGN: usize = 48;

/// Runs the tender on the patched image and checks the refusal names the
/// file and contains `needle`.
fn refused(name: &str, patch: impl FnOnce(&mut Fixture), needle: &str) {
    let dir = TempDir::new("images");
    let mut f = Fixture::hello();
    patch(&mut f);
    let path = f.write(&dir, name);
    let out = run(&[&path]);
    out.assert_refused(&format!("tender: {}: ", path.display()));
    assert!(out.stderr.contains(needle), "{name}: expected {needle:?} in {:?}", out.stderr);
    // --inspect validates the same way.
    run(&[std::ffi::OsStr::new("--inspect"), path.as_os_str()]).assert_refused(needle);
}

#[test]
fn the_unpatched_fixture_runs() {
    let dir = TempDir::new("images");
    let path = Fixture::hello().write(&dir, "hello-copy");
    run(&[&path]).assert_ok();
}

#[test]
fn not_elf() {
    refused("text", |f| f.bytes = b"#!/bin/sh\necho not a guest\n".to_vec(), "not an ELF file");
    refused("empty", |f| f.bytes.clear(), "not an ELF file");
}

#[test]
fn not_64_bit() {
    refused("elf32", |f| f.bytes[4] = 1, "not a 64-bit ELF file");
}

#[test]
fn not_little_endian() {
    refused("big-endian", |f| f.bytes[5] = 2, "not a little-endian ELF file");
}

#[test]
fn wrong_machine() {
    refused(
        "aarch64",
        |f| {
            f.set16(18, 183);
        },
        "wrong machine 183 (aarch64), expected x86_64",
    );
}

#[test]
fn position_independent() {
    refused(
        "et-dyn",
        |f| {
            f.set16(16, 3);
        },
        "position-independent",
    );
    // A real PIE from the host.
    let out = run(&["/bin/true"]);
    out.assert_refused(
        "tender: /bin/true: position-independent executable or shared object (ET_DYN)",
    );
}

#[test]
fn not_executable() {
    refused(
        "et-rel",
        |f| {
            f.set16(16, 1);
        },
        "not an executable: e_type 1 (ET_REL)",
    );
}

#[test]
fn bad_program_header_table() {
    refused(
        "phentsize",
        |f| {
            f.set16(54, 32);
        },
        "e_phentsize is 32, expected 56",
    );
    refused(
        "phoff-past-end",
        |f| {
            f.set64(32, 1 << 40);
        },
        "extends past the end of the file",
    );
    refused(
        "phoff-overflow",
        |f| {
            f.set64(32, u64::MAX - 8);
        },
        "overflows",
    );
}

#[test]
fn write_and_execute() {
    refused(
        "wx",
        |f| {
            let t = f.ph(f.text());
            f.set32(t + P_FLAGS, 7);
        },
        "is both writable and executable (W^X)",
    );
}

#[test]
fn misaligned_segment() {
    refused(
        "align",
        |f| {
            let t = f.ph(f.text());
            f.set64(t + P_ALIGN, 16);
        },
        "is not a power of two of at least the page size",
    );
    refused(
        "vaddr",
        |f| {
            let d = f.ph(f.data());
            let (off, va) = (f.u64_at(d + P_OFFSET), f.u64_at(d + P_VADDR));
            f.set64(d + P_OFFSET, off + 8).set64(d + P_VADDR, va + 8);
        },
        "is not aligned to the page size",
    );
}

#[test]
fn incongruent_segment() {
    refused(
        "incongruent",
        |f| {
            let t = f.ph(f.text());
            let off = f.u64_at(t + P_OFFSET);
            f.set64(t + P_OFFSET, off + 8);
        },
        "differ modulo the page size",
    );
}

#[test]
fn overlapping_segments() {
    refused(
        "overlap",
        |f| {
            let t = f.ph(f.text());
            let r = f.ph(f.rodata());
            let text_va = f.u64_at(t + P_VADDR);
            f.set64(r + P_VADDR, text_va);
        },
        "share a page",
    );
}

#[test]
fn segment_outside_guest_memory() {
    refused(
        "above",
        |f| {
            let d = f.ph(f.data());
            f.set64(d + P_VADDR, 1 << 30);
        },
        "outside guest memory",
    );
    refused(
        "below",
        |f| {
            let d = f.ph(f.data());
            f.set64(d + P_VADDR, 0x1_0000);
        },
        "outside guest memory",
    );
}

#[test]
fn filesz_exceeds_memsz() {
    refused(
        "filesz",
        |f| {
            let d = f.ph(f.data());
            let memsz = f.u64_at(d + P_MEMSZ);
            f.set64(d + P_FILESZ, memsz + 1);
        },
        "exceeds p_memsz",
    );
}

#[test]
fn data_past_end_of_file() {
    refused(
        "past-end",
        |f| {
            let d = f.ph(f.data());
            let end = (f.bytes.len() as u64).div_ceil(4096) * 4096;
            f.set64(d + P_OFFSET, end);
        },
        "past the end of the file",
    );
}

#[test]
fn truncated_guest() {
    refused("truncated", |f| f.bytes.truncate(0x1800), "past the end of the file");
    refused("header-only", |f| f.bytes.truncate(40), "not an ELF file");
}

#[test]
fn entry_point_outside_text() {
    refused(
        "entry",
        |f| {
            let d = f.ph(f.data());
            let va = f.u64_at(d + P_VADDR);
            f.set64(24, va);
        },
        "is not in the file-backed part of an executable segment",
    );
}

#[test]
fn overflow() {
    refused(
        "memsz-overflow",
        |f| {
            let d = f.ph(f.data());
            f.set64(d + P_MEMSZ, u64::MAX - 0x10).set64(d + P_FILESZ, 0);
        },
        "overflows",
    );
    refused(
        "offset-overflow",
        |f| {
            let d = f.ph(f.data());
            f.set64(d + P_OFFSET, !0xfff).set64(d + P_FILESZ, 0x1000);
            f.set64(d + P_MEMSZ, 0x1000);
        },
        "overflows",
    );
}

#[test]
fn no_load_segments() {
    refused(
        "no-load",
        |f| {
            for i in 0..f.phnum() {
                let p = f.ph(i);
                if f.u32_at(p) == PT_LOAD {
                    f.set32(p, 0);
                }
            }
        },
        "no PT_LOAD segments",
    );
}

#[test]
fn thread_local_storage() {
    refused(
        "tls",
        |f| {
            // A TLS template the image does not hold (p_vaddr 0).
            let i = f.find(PT_INTERP, 0);
            let p = f.ph(i);
            f.set32(p, PT_TLS);
            f.set64(p + P_VADDR, 0);
        },
        "PT_TLS that has its template outside the file-backed part of every PT_LOAD",
    );
}

#[test]
fn missing_or_wrong_abi_note() {
    refused(
        "no-abi-note",
        |f| {
            let n = f.notes();
            f.set32(n + 8, 99);
        },
        "no nabla ABI note",
    );
    refused(
        "abi-version",
        |f| {
            let n = f.notes();
            f.set32(n + 24, 99);
        },
        "guest built for nabla ABI version 99, this tender implements version ",
    );
    refused(
        "abi-target",
        |f| {
            let n = f.notes();
            f.set32(n + 28, 5);
        },
        "guest built for nabla target 5",
    );
}

#[test]
fn missing_or_bad_manifest() {
    // The manifest note follows the 32-byte ABI note.
    refused(
        "no-manifest",
        |f| {
            let n = f.notes() + 32;
            f.set32(n + 8, 99);
        },
        "no nabla manifest note",
    );
    refused(
        "manifest-count",
        |f| {
            let n = f.notes() + 32;
            f.set32(n + 24 + 4, 64);
        },
        "bad nabla manifest note: 64 devices declared, at most 63 allowed",
    );
    refused(
        "manifest-kind",
        |f| {
            let n = f.notes() + 32;
            f.set32(n + 24 + 4, 1);
            f.bytes[n + 24 + 8] = b'x';
            f.set32(n + 24 + 8 + 16, 7);
        },
        "device 0: unknown device kind 7",
    );
}
