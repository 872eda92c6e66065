//! The bytes the FAT test guests write for a file `(len, seed)`: a xorshift
//! stream. One definition for the guests (std-fat-ops, std-fat-crash) and
//! the host suites that check what they wrote (fat_interop, fat_crash).

/// `len` bytes of the stream seeded by `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
