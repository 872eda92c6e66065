//! The boot region's contents: the boot info, the argument, environment and
//! device tables, and the strings they point to.
//!
//! Built here as plain bytes (so it can be tested without mapping memory)
//! laid out for the address `abi::BOOT_REGION_START`; `memory` copies it
//! into place and makes it read-only.
//!
//! ```text
//!   BootInfo | argv: [BootStr; argc] | envp: [BootStr; envc] | [DeviceInfo; n]
//!            | [BootFile; etc_count] | strings | /etc names and contents
//! ```

use std::mem::offset_of;

use abi::{BOOT_MAGIC, BootFile, BootInfo, BootStr, DeviceInfo};

use crate::layout::Layout;

/// The boot region does not have room for everything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "arguments, environment and /etc files take {needed} bytes, more than the {available} bytes \
     of the guest's boot region"
)]
pub struct TooLarge {
    /// Bytes needed.
    pub needed: usize,
    /// Bytes available.
    pub available: usize,
}

/// What goes into the boot region.
#[derive(Debug)]
pub struct BootParams<'a> {
    /// Guest argv, the application's path first.
    pub args: &'a [String],
    /// Guest environment, each `KEY=VALUE`.
    pub env: &'a [String],
    /// Attached devices, in manifest order.
    pub devices: &'a [DeviceInfo],
    /// One of `abi::log_level`.
    pub log_level: u32,
    /// The guest's random seed (`BootInfo::random`).
    pub random: [u64; 4],
    /// The kernel's `AT_HWCAP2`.
    pub hwcap2: u64,
    /// The signal fds (`BootInfo::signal_fds`), -1 where none.
    pub signal_fds: [i32; 2],
    /// The vDSO's `clock_gettime` (`BootInfo::vdso_clock_gettime`), 0 if none.
    pub vdso_clock_gettime: u64,
    /// The image file's read-only mapping (`BootInfo::image_file`,
    /// `image_file_len`), (0, 0) if none.
    pub image_file: (u64, u64),
    /// Files for the guest's `/etc` (`--etc`): name and contents, names
    /// checked by `abi::check_etc_name`, at most `abi::MAX_ETC_FILES`.
    pub etc: &'a [(String, Vec<u8>)],
}

/// Whether `entry` is an environment variable as the guest takes it:
/// `KEY=VALUE` with a non-empty `KEY`.
pub fn is_env_entry(entry: &str) -> bool {
    matches!(entry.split_once('='), Some((key, _)) if !key.is_empty())
}

/// A line (or NUL-terminated entry) of an environment file that is not a
/// variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: expected KEY=VALUE with a non-empty KEY")]
pub struct BadEnvLine {
    /// The line's (or entry's) number, from 1.
    pub line: usize,
}

/// The variables of an environment file (`--env-file`): one `KEY=VALUE` a
/// line, taken as it is (no quotes, no escapes: the value runs to the end
/// of the line, `=` and spaces included). Empty lines and lines beginning
/// with `#` are skipped; a line's final CR is dropped. A file that holds a
/// NUL byte is read as `/proc/PID/environ` is written instead: entries
/// ended by NUL, which may hold line breaks (how nabla-runc passes a
/// container's environment).
pub fn parse_env_file(text: &str) -> Result<Vec<String>, BadEnvLine> {
    let environ = text.contains('\0');
    let entries: Box<dyn Iterator<Item = &str>> = if environ {
        Box::new(text.split_terminator('\0'))
    } else {
        Box::new(text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)))
    };
    let mut vars = Vec::new();
    for (k, entry) in entries.enumerate() {
        if !environ && (entry.is_empty() || entry.starts_with('#')) {
            continue;
        }
        if !is_env_entry(entry) {
            return Err(BadEnvLine { line: k + 1 });
        }
        vars.push(entry.to_string());
    }
    Ok(vars)
}

/// Serialises `params` for `layout`'s boot region. The result is at most
/// the region's size; the boot info is at its start.
pub fn build(params: &BootParams<'_>, layout: &Layout) -> Result<Vec<u8>, TooLarge> {
    let base = layout.boot_start;
    let available = (layout.boot_end - layout.boot_start) as usize;
    let info_size = size_of::<BootInfo>();
    let argv_off = info_size;
    let envp_off = argv_off + params.args.len() * size_of::<BootStr>();
    let dev_off = envp_off + params.env.len() * size_of::<BootStr>();
    let etc_off = dev_off + size_of_val(params.devices);
    let str_off = etc_off + params.etc.len() * size_of::<BootFile>();
    let needed = str_off
        + params.args.iter().map(String::len).sum::<usize>()
        + params.env.iter().map(String::len).sum::<usize>()
        + params.etc.iter().map(|(n, d)| n.len() + d.len()).sum::<usize>();
    if needed > available {
        return Err(TooLarge { needed, available });
    }

    let mut buf = vec![0u8; needed];
    let mut next_str = str_off;
    let mut put_strs = |buf: &mut Vec<u8>, table_off: usize, strs: &[String]| {
        for (i, s) in strs.iter().enumerate() {
            buf[next_str..next_str + s.len()].copy_from_slice(s.as_bytes());
            let entry = BootStr { ptr: base + next_str as u64, len: s.len() as u64 };
            let off = table_off + i * size_of::<BootStr>();
            put(buf, off + offset_of!(BootStr, ptr), &entry.ptr.to_le_bytes());
            put(buf, off + offset_of!(BootStr, len), &entry.len.to_le_bytes());
            next_str += s.len();
        }
    };
    put_strs(&mut buf, argv_off, params.args);
    put_strs(&mut buf, envp_off, params.env);
    for (i, d) in params.devices.iter().enumerate() {
        put_device(&mut buf, dev_off + i * size_of::<DeviceInfo>(), d);
    }
    let mut put_bytes = |buf: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        buf[next_str..next_str + bytes.len()].copy_from_slice(bytes);
        put(buf, off + offset_of!(BootStr, ptr), &(base + next_str as u64).to_le_bytes());
        put(buf, off + offset_of!(BootStr, len), &(bytes.len() as u64).to_le_bytes());
        next_str += bytes.len();
    };
    for (i, (name, data)) in params.etc.iter().enumerate() {
        let off = etc_off + i * size_of::<BootFile>();
        put_bytes(&mut buf, off + offset_of!(BootFile, name), name.as_bytes());
        put_bytes(&mut buf, off + offset_of!(BootFile, data), data);
    }

    let info = BootInfo {
        magic: BOOT_MAGIC,
        abi_version: abi::ABI_VERSION,
        log_level: params.log_level,
        mem_size: layout.mem_size,
        heap_start: layout.heap_start,
        heap_end: layout.heap_end,
        stack_bottom: layout.stack_bottom,
        stack_top: layout.stack_top,
        argc: params.args.len() as u64,
        argv: base + argv_off as u64,
        envc: params.env.len() as u64,
        envp: base + envp_off as u64,
        device_count: params.devices.len() as u64,
        devices: base + dev_off as u64,
        random: params.random,
        hwcap2: params.hwcap2,
        signal_fds: params.signal_fds,
        vdso_clock_gettime: params.vdso_clock_gettime,
        image_file: params.image_file.0,
        image_file_len: params.image_file.1,
        etc_count: params.etc.len() as u64,
        etc_files: base + etc_off as u64,
    };
    put_info(&mut buf, &info);
    Ok(buf)
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Writes each field at its `offset_of!`, so the bytes follow the `repr(C)`
/// type whatever its field order, without reinterpreting memory.
fn put_info(buf: &mut [u8], i: &BootInfo) {
    macro_rules! field {
        ($f:ident) => {
            put(buf, offset_of!(BootInfo, $f), &i.$f.to_le_bytes())
        };
    }
    field!(magic);
    field!(abi_version);
    field!(log_level);
    field!(mem_size);
    field!(heap_start);
    field!(heap_end);
    field!(stack_bottom);
    field!(stack_top);
    field!(argc);
    field!(argv);
    field!(envc);
    field!(envp);
    field!(device_count);
    field!(devices);
    for (k, word) in i.random.iter().enumerate() {
        put(buf, offset_of!(BootInfo, random) + 8 * k, &word.to_le_bytes());
    }
    field!(hwcap2);
    for (k, fd) in i.signal_fds.iter().enumerate() {
        put(buf, offset_of!(BootInfo, signal_fds) + 4 * k, &fd.to_le_bytes());
    }
    field!(vdso_clock_gettime);
    field!(image_file);
    field!(image_file_len);
    field!(etc_count);
    field!(etc_files);
}

fn put_device(buf: &mut [u8], off: usize, d: &DeviceInfo) {
    macro_rules! field {
        ($f:ident) => {
            put(buf, off + offset_of!(DeviceInfo, $f), &d.$f.to_le_bytes())
        };
    }
    put(buf, off + offset_of!(DeviceInfo, name), &d.name);
    put(buf, off + offset_of!(DeviceInfo, mac), &d.mac);
    field!(kind);
    field!(fd);
    field!(mtu);
    field!(sector_size);
    field!(capacity);
    field!(flags);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(0x110000, 64 << 20).unwrap()
    }

    fn word(buf: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(buf[off..off + 8].try_into().unwrap())
    }

    fn string(buf: &[u8], table: u64, i: usize) -> &str {
        let base = abi::BOOT_REGION_START;
        let entry = (table - base) as usize + i * size_of::<BootStr>();
        let (ptr, len) = (word(buf, entry), word(buf, entry + 8));
        std::str::from_utf8(&buf[(ptr - base) as usize..][..len as usize]).unwrap()
    }

    #[test]
    fn serialises_the_boot_info_as_the_abi_lays_it_out() {
        let args = vec!["/app".to_string(), "one".to_string(), "two".to_string()];
        let env = vec!["NAME=nabla".to_string()];
        let params = BootParams {
            args: &args,
            env: &env,
            devices: &[],
            log_level: 3,
            random: [1, 2, 3, 4],
            hwcap2: 2,
            signal_fds: [7, -1],
            vdso_clock_gettime: 0x7fff_1234_5000,
            image_file: (0x7fff_2000_0000, 12345),
            etc: &[],
        };
        let l = layout();
        let buf = build(&params, &l).unwrap();
        assert_eq!(word(&buf, offset_of!(BootInfo, magic)), BOOT_MAGIC);
        assert_eq!(buf[offset_of!(BootInfo, abi_version)], abi::ABI_VERSION as u8);
        assert_eq!(buf[offset_of!(BootInfo, log_level)], 3);
        assert_eq!(word(&buf, offset_of!(BootInfo, mem_size)), l.mem_size);
        assert_eq!(word(&buf, offset_of!(BootInfo, heap_start)), l.heap_start);
        assert_eq!(word(&buf, offset_of!(BootInfo, heap_end)), l.heap_end);
        assert_eq!(word(&buf, offset_of!(BootInfo, stack_bottom)), l.stack_bottom);
        assert_eq!(word(&buf, offset_of!(BootInfo, stack_top)), l.stack_top);
        assert_eq!(word(&buf, offset_of!(BootInfo, argc)), 3);
        assert_eq!(word(&buf, offset_of!(BootInfo, envc)), 1);
        assert_eq!(word(&buf, offset_of!(BootInfo, device_count)), 0);
        let argv = word(&buf, offset_of!(BootInfo, argv));
        assert_eq!(string(&buf, argv, 0), "/app");
        assert_eq!(string(&buf, argv, 2), "two");
        assert_eq!(string(&buf, word(&buf, offset_of!(BootInfo, envp)), 0), "NAME=nabla");
        assert_eq!(word(&buf, offset_of!(BootInfo, random) + 24), 4);
        assert_eq!(word(&buf, offset_of!(BootInfo, hwcap2)), 2);
        let fds = offset_of!(BootInfo, signal_fds);
        assert_eq!(buf[fds..fds + 8], [7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(word(&buf, offset_of!(BootInfo, vdso_clock_gettime)), 0x7fff_1234_5000);
        assert_eq!(word(&buf, offset_of!(BootInfo, image_file)), 0x7fff_2000_0000);
        assert_eq!(word(&buf, offset_of!(BootInfo, image_file_len)), 12345);
    }

    #[test]
    fn devices_follow_the_abi_layout() {
        let mut d = DeviceInfo {
            name: [0; 16],
            kind: 1,
            fd: 3,
            mtu: 9000,
            sector_size: 512,
            capacity: 1 << 30,
            mac: [2, 0, 0, 0, 0, 1],
            flags: 1,
        };
        d.name[..8].copy_from_slice(b"service0");
        let params = BootParams {
            args: &[],
            env: &[],
            devices: &[d],
            log_level: 2,
            random: [0; 4],
            hwcap2: 0,
            signal_fds: [-1, -1],
            vdso_clock_gettime: 0,
            image_file: (0, 0),
            etc: &[],
        };
        let buf = build(&params, &layout()).unwrap();
        let off = (word(&buf, offset_of!(BootInfo, devices)) - abi::BOOT_REGION_START) as usize;
        assert_eq!(&buf[off..off + 8], b"service0");
        assert_eq!(buf[off + offset_of!(DeviceInfo, fd)], 3);
        assert_eq!(word(&buf, off + offset_of!(DeviceInfo, capacity)), 1 << 30);
        assert_eq!(buf[off + offset_of!(DeviceInfo, mac) + 5], 1);
        assert_eq!(buf[off + offset_of!(DeviceInfo, flags)], 1);
        let mtu = off + offset_of!(DeviceInfo, mtu);
        assert_eq!(u32::from_le_bytes(buf[mtu..mtu + 4].try_into().unwrap()), 9000);
    }

    #[test]
    fn refuses_more_than_the_region_holds() {
        let big = vec!["x".repeat(1 << 20)];
        let params = BootParams {
            args: &big,
            env: &[],
            devices: &[],
            log_level: 2,
            random: [0; 4],
            hwcap2: 0,
            signal_fds: [-1, -1],
            vdso_clock_gettime: 0,
            image_file: (0, 0),
            etc: &[],
        };
        assert!(matches!(build(&params, &layout()), Err(TooLarge { .. })));
    }

    #[test]
    fn etc_files_follow_the_abi_layout() {
        let etc = vec![
            ("hosts".to_string(), b"10.0.0.2 db\n".to_vec()),
            ("hostname".to_string(), vec![0xff, 0, b'x']),
        ];
        let args = vec!["/app".to_string()];
        let params = BootParams {
            args: &args,
            env: &[],
            devices: &[],
            log_level: 2,
            random: [0; 4],
            hwcap2: 0,
            signal_fds: [-1, -1],
            vdso_clock_gettime: 0,
            image_file: (0, 0),
            etc: &etc,
        };
        let buf = build(&params, &layout()).unwrap();
        assert_eq!(word(&buf, offset_of!(BootInfo, etc_count)), 2);
        let table = word(&buf, offset_of!(BootInfo, etc_files));
        assert_eq!(table % 8, 0);
        let base = abi::BOOT_REGION_START;
        let bytes = |entry: u64| {
            let off = (entry - base) as usize;
            let (ptr, len) = (word(&buf, off), word(&buf, off + 8));
            buf[(ptr - base) as usize..][..len as usize].to_vec()
        };
        assert_eq!(bytes(table), b"hosts");
        assert_eq!(bytes(table + 16), b"10.0.0.2 db\n");
        assert_eq!(bytes(table + 32), b"hostname");
        assert_eq!(bytes(table + 48), [0xff, 0, b'x']);
        assert_eq!(string(&buf, word(&buf, offset_of!(BootInfo, argv)), 0), "/app");
    }

    #[test]
    fn variables_are_taken_as_they_are() {
        let text = "# database\nDB_PASSWORD=s3cret= x \n\nGREETING=hello world\r\nEMPTY=\n";
        assert_eq!(
            parse_env_file(text),
            Ok(vec![
                "DB_PASSWORD=s3cret= x ".into(),
                "GREETING=hello world".into(),
                "EMPTY=".into()
            ])
        );
        assert_eq!(parse_env_file(""), Ok(vec![]));
    }

    #[test]
    fn nul_terminated_entries_may_hold_line_breaks() {
        let text = "CERT=-----BEGIN\nabc\n-----END\n\0# not a comment=1\0EMPTY=\0";
        assert_eq!(
            parse_env_file(text),
            Ok(vec![
                "CERT=-----BEGIN\nabc\n-----END\n".into(),
                "# not a comment=1".into(),
                "EMPTY=".into()
            ])
        );
        assert_eq!(parse_env_file("A=1\0\0"), Err(BadEnvLine { line: 2 }), "an empty entry");
    }

    #[test]
    fn a_line_that_is_not_a_variable_is_refused_by_number() {
        assert_eq!(parse_env_file("A=1\nB\n"), Err(BadEnvLine { line: 2 }));
        assert_eq!(parse_env_file("A=1\n\n=2\n"), Err(BadEnvLine { line: 3 }));
        assert_eq!(parse_env_file(" # not a comment\n"), Err(BadEnvLine { line: 1 }));
    }
}
