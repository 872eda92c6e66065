//! The manifest and ABI note descriptors as the tender decodes them from an
//! image (`abi::Manifest::from_bytes`, `validate`, `AbiNote::from_bytes`),
//! and what the tender then reads from a valid manifest: the entries, their
//! names and kinds.

#![no_main]

use abi::{AbiNote, DeviceKind, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = AbiNote::from_bytes(data);
    let _ = AbiNote::from_bytes(data.get(..8).unwrap_or(data));
    let _ = Manifest::from_bytes(data);

    // Most inputs are not exactly a descriptor's size: pad or cut them to
    // it, so that the fuzzer explores the contents.
    let mut bytes = vec![0u8; size_of::<Manifest>()];
    let n = data.len().min(bytes.len());
    bytes[..n].copy_from_slice(&data[..n]);
    let manifest = Manifest::from_bytes(&bytes).expect("the size is right");
    let entries = manifest.entries();
    assert!(entries.len() <= abi::MAX_DEVICES);
    match manifest.validate() {
        Ok(()) => {
            assert_eq!(entries.len(), manifest.count as usize);
            let mut names = Vec::new();
            for e in entries {
                let name = e.name().expect("valid names");
                assert!(abi::check_name(name.as_bytes()).is_ok());
                assert!(DeviceKind::from_raw(e.kind).is_some());
                assert!(!names.contains(&name), "duplicate {name}");
                names.push(name);
            }
        }
        Err(e) => {
            // The tender prints it.
            let _ = e.to_string();
        }
    }
    for e in entries {
        let _ = e.name().map_err(|e| e.to_string());
        let _ = DeviceKind::from_raw(e.kind).map(DeviceKind::as_str);
    }
});
