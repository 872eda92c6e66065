//! The tender's image validation (`tender::image::Image::parse`): the ELF
//! header, the program headers, the segments' bounds and permissions, the
//! entry point and the notes, on any bytes a user may hand the tender.
//!
//! For an image that passes, checks what the mapping code relies on, and
//! lays out guest memory for it as the tender would.

#![no_main]

use abi::{GUEST_BASE, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;
use tender::image::Image;
use tender::layout::Layout;

fuzz_target!(|data: &[u8]| {
    let mem = Layout::mem_bytes(abi::DEFAULT_MEM_MIB).unwrap();
    let limit = Layout::image_limit(mem);
    let Ok(image) = Image::parse(data, limit) else { return };

    let file_len = data.len() as u64;
    let mut prev_end = GUEST_BASE;
    for s in &image.segments {
        assert!(s.vaddr >= prev_end && s.vaddr % PAGE_SIZE == 0, "{image:?}");
        assert_eq!(s.offset % PAGE_SIZE, 0);
        assert!(s.memsz > 0 && s.filesz <= s.memsz);
        assert!(s.offset + s.filesz <= file_len);
        assert!(!(s.perms.write && s.perms.exec));
        prev_end = (s.vaddr + s.memsz).next_multiple_of(PAGE_SIZE);
    }
    assert_eq!(image.end, prev_end);
    assert!(image.end <= limit);
    assert!(
        image
            .segments
            .iter()
            .any(|s| s.perms.exec && (s.vaddr..s.vaddr + s.filesz).contains(&image.entry))
    );
    assert_eq!(image.manifest.validate(), Ok(()));
    assert_eq!(image.abi, abi::AbiNote::CURRENT);
    let layout = Layout::new(image.end, mem).expect("an image inside the limit fits");
    assert!(layout.heap_start >= image.end && layout.heap_end > layout.heap_start);
});
