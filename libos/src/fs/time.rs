//! FAT timestamps: local date and time with 2-second resolution (and
//! 10 ms for the creation time), taken as UTC, the guest's local time.

use crate::calendar::{civil_from_days, days_from_civil};

/// First and last instants FAT can hold: 1980-01-01 and 2107-12-31 23:59:58.
const FAT_MIN: u64 = 315_532_800;
const FAT_MAX: u64 = 4_354_819_198;

/// (date, time, tenths-of-10ms) of `secs` since the epoch, clamped to what
/// FAT can hold.
pub(crate) fn to_fat(secs: u64) -> (u16, u16, u8) {
    let secs = secs.clamp(FAT_MIN, FAT_MAX);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let date = ((y - 1980) as u16) << 9 | (m as u16) << 5 | d as u16;
    let time = ((rem / 3600) as u16) << 11 | ((rem / 60 % 60) as u16) << 5 | (rem % 60 / 2) as u16;
    (date, time, (rem % 2 * 100) as u8)
}

/// Seconds since the epoch of a FAT date and time (0 for an unset or
/// invalid date).
pub(crate) fn from_fat(date: u16, time: u16) -> u64 {
    let (y, m, d) =
        (1980 + i64::from(date >> 9), u32::from(date >> 5 & 0xf), u32::from(date & 0x1f));
    if !(1..=12).contains(&m) || d == 0 {
        return 0;
    }
    let (h, min, s) =
        (i64::from(time >> 11), i64::from(time >> 5 & 0x3f), i64::from(time & 0x1f) * 2);
    let secs = days_from_civil(y, m, d) * 86_400 + h.min(23) * 3600 + min.min(59) * 60 + s.min(59);
    secs.max(0) as u64
}

/// Now, in seconds since the epoch.
pub(crate) fn now() -> u64 {
    crate::time::SystemTime::now()
        .duration_since(crate::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_both_ways() {
        for secs in [315_532_800u64, 951_782_400, 1_700_000_000, 2_000_000_000, FAT_MAX] {
            let (d, t, _) = to_fat(secs);
            assert_eq!(from_fat(d, t), secs);
        }
        let (d, t, tenths) = to_fat(1_700_000_001);
        assert_eq!((from_fat(d, t), tenths), (1_700_000_000, 100));
        assert_eq!(to_fat(0), to_fat(FAT_MIN));
        assert_eq!(from_fat(0, 0), 0);
    }
}
