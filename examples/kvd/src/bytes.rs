//! Byte strings stored inline when short: keys ([`Key`]) and string values
//! ([`Str`]).
//!
//! Most keys and many values are a few bytes long. Kept inline (up to
//! [`INLINE`] bytes, in the 32 bytes a pointer, a length and a tag take
//! anyway), they cost no allocation and, more to the point, no cache miss
//! on a lookup: comparing the key and copying the value out read the
//! hash table's slot and nothing else.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

/// Bytes kept inline.
pub const INLINE: usize = 30;

#[derive(Clone, Copy)]
struct Inline {
    len: u8,
    buf: [u8; INLINE],
}

impl Inline {
    fn new(b: &[u8]) -> Option<Self> {
        let mut buf = [0u8; INLINE];
        buf.get_mut(..b.len())?.copy_from_slice(b);
        Some(Self { len: b.len() as u8, buf })
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A key: inline when short, shared (reference-counted) otherwise, so that
/// the indexes that hold it too (scan order, deadlines) share one copy.
#[derive(Clone)]
pub struct Key(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline(Inline),
    Shared(Rc<[u8]>),
}

impl Key {
    /// A key holding `b`.
    pub fn new(b: &[u8]) -> Self {
        match Inline::new(b) {
            Some(i) => Self(KeyRepr::Inline(i)),
            None => Self(KeyRepr::Shared(Rc::from(b))),
        }
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline(i) => i.as_slice(),
            KeyRepr::Shared(r) => r,
        }
    }
}

/// A string value: inline when short, an owned buffer otherwise.
#[derive(Clone)]
pub struct Str(StrRepr);

#[derive(Clone)]
enum StrRepr {
    Inline(Inline),
    Heap(Vec<u8>),
}

impl Str {
    /// A value holding `b`.
    pub fn new(b: &[u8]) -> Self {
        match Inline::new(b) {
            Some(i) => Self(StrRepr::Inline(i)),
            None => Self(StrRepr::Heap(b.to_vec())),
        }
    }

    /// Appends `b` (`APPEND`).
    pub fn extend_from_slice(&mut self, b: &[u8]) {
        match &mut self.0 {
            StrRepr::Heap(v) => v.extend_from_slice(b),
            StrRepr::Inline(i) => {
                let len = usize::from(i.len);
                if let Some(room) = i.buf.get_mut(len..len + b.len()) {
                    room.copy_from_slice(b);
                    i.len += b.len() as u8;
                } else {
                    let mut v = Vec::with_capacity(len + b.len());
                    v.extend_from_slice(i.as_slice());
                    v.extend_from_slice(b);
                    self.0 = StrRepr::Heap(v);
                }
            }
        }
    }
}

impl Deref for Str {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            StrRepr::Inline(i) => i.as_slice(),
            StrRepr::Heap(v) => v,
        }
    }
}

macro_rules! bytes_traits {
    ($t:ty) => {
        impl Borrow<[u8]> for $t {
            fn borrow(&self) -> &[u8] {
                self
            }
        }

        // Hash, Eq and Ord are those of the bytes, as `Borrow` requires.
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                (**self).hash(state)
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                **self == **other
            }
        }

        impl Eq for $t {}

        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $t {
            fn cmp(&self, other: &Self) -> core::cmp::Ordering {
                (**self).cmp(&**other)
            }
        }

        impl core::fmt::Debug for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:?}", alloc::string::String::from_utf8_lossy(self))
            }
        }
    };
}

bytes_traits!(Key);
bytes_traits!(Str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_is_inline_long_is_not() {
        assert_eq!(core::mem::size_of::<Key>(), 32);
        assert_eq!(core::mem::size_of::<Str>(), 32);
        let k = Key::new(b"key:000000012345");
        assert!(matches!(k.0, KeyRepr::Inline(_)));
        assert_eq!(&*k, b"key:000000012345");
        let long = [7u8; 31];
        let k = Key::new(&long);
        assert!(matches!(k.0, KeyRepr::Shared(_)));
        assert_eq!(&*k, &long[..]);
        assert_eq!(Key::new(b"a"), Key::new(b"a"));
        assert!(Key::new(b"a") < Key::new(b"b"));
    }

    #[test]
    fn append_moves_to_the_heap_when_it_must() {
        let mut s = Str::new(b"");
        for i in 0..100u8 {
            s.extend_from_slice(&[i]);
            assert_eq!(s.len(), usize::from(i) + 1);
            assert_eq!(s[usize::from(i)], i);
        }
        assert!(matches!(s.0, StrRepr::Heap(_)));
        let mut t = Str::new(&[1; 29]);
        t.extend_from_slice(&[2]);
        assert!(matches!(t.0, StrRepr::Inline(_)));
        t.extend_from_slice(&[3]);
        assert!(matches!(t.0, StrRepr::Heap(_)));
        assert_eq!(&t[28..], &[1, 2, 3]);
    }
}
