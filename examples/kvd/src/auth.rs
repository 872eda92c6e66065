//! `requirepass` and `AUTH`, as Redis 6 and 7 have them for the `default`
//! user: with a password set, a connection must authenticate (`AUTH
//! password` or `AUTH default password`) before any command but `AUTH`;
//! until then, the parser also applies Redis's limits for unauthenticated
//! clients (`crate::resp`), so that a stranger cannot make kvd buffer more
//! than a few KiB.
//!
//! The password is compared in time that depends only on the length of
//! the candidate, never on where it first differs from the password.

use alloc::vec::Vec;
use core::fmt;

/// The `default` user's password (`KVD_REQUIREPASS`). Its `Debug` does
/// not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    /// A password; `None` for an empty one (Redis: `requirepass ""` means
    /// no password).
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (!bytes.is_empty()).then(|| Self(bytes.to_vec()))
    }

    /// The password (`CONFIG GET requirepass`, for authenticated clients,
    /// as Redis answers it).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `candidate` is the password, in constant time for a given
    /// candidate length.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(&self.0, candidate)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Whether `a == b`, comparing every byte of `b` whatever the content:
/// the time taken depends on `b.len()` (the caller's), not on `a` or on
/// the position of the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    if a.is_empty() {
        return b.is_empty();
    }
    for (i, &y) in b.iter().enumerate() {
        // Indexing modulo a's length: the same work for every byte of b.
        let x = a[i % a.len()];
        diff |= core::hint::black_box(x ^ y);
    }
    core::hint::black_box(diff) == 0
}

/// `-NOAUTH`, the reply to any command but `AUTH` before authentication.
pub const NOAUTH: &[u8] = b"NOAUTH Authentication required.";
/// `-WRONGPASS`, the reply to a wrong user or password.
pub const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";
/// The reply to `AUTH password` when no password is set.
pub const NO_PASSWORD: &[u8] = b"ERR AUTH <password> called without any password configured \
for the default user. Are you sure your configuration is correct?";

/// The outcome of `AUTH [user] password` against `requirepass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `+OK`: the connection is authenticated.
    Ok,
    /// `-WRONGPASS ...`: the connection stays as it was.
    WrongPass,
    /// `AUTH password` without a password set: `-ERR AUTH <password> called
    /// without any password ...`.
    NoPassword,
}

/// Redis's `authCommand` for the one user, `default`: `args` are AUTH's
/// arguments (one or two). Without a password the default user is
/// `nopass`: `AUTH default anything` is `+OK`, `AUTH password` is an error.
pub fn check(requirepass: Option<&Password>, args: &[&[u8]]) -> Outcome {
    let (user, password) = match args {
        [password] => {
            if requirepass.is_none() {
                return Outcome::NoPassword;
            }
            (&b"default"[..], *password)
        }
        [user, password] => (*user, *password),
        _ => return Outcome::WrongPass,
    };
    // Both compared, whatever the user, so that the time does not tell
    // whether the user name was right.
    let password_ok = requirepass.is_none_or(|p| p.matches(password));
    if user == b"default" && password_ok { Outcome::Ok } else { Outcome::WrongPass }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        for (a, b) in [
            (&b"secret"[..], &b"secret"[..]),
            (b"secret", b"secreT"),
            (b"secret", b"secre"),
            (b"secret", b"secretsecret"),
            (b"s", b""),
            (b"", b""),
            (b"", b"x"),
            (b"ab", b"abab"),
        ] {
            assert_eq!(constant_time_eq(a, b), a == b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn auth_as_redis_7() {
        let p = Password::new(b"s3cret");
        let p = p.as_ref();
        assert_eq!(check(p, &[b"s3cret"]), Outcome::Ok);
        assert_eq!(check(p, &[b"default", b"s3cret"]), Outcome::Ok);
        assert_eq!(check(p, &[b"wrong"]), Outcome::WrongPass);
        assert_eq!(check(p, &[b"default", b"wrong"]), Outcome::WrongPass);
        assert_eq!(check(p, &[b"nobody", b"s3cret"]), Outcome::WrongPass);
        assert_eq!(check(p, &[b"DEFAULT", b"s3cret"]), Outcome::WrongPass);
        // No password: the default user is nopass.
        assert_eq!(check(None, &[b"x"]), Outcome::NoPassword);
        assert_eq!(check(None, &[b"default", b"x"]), Outcome::Ok);
        assert_eq!(check(None, &[b"other", b"x"]), Outcome::WrongPass);
        assert!(Password::new(b"").is_none());
        assert_eq!(alloc::format!("{:?}", Password::new(b"s3cret").unwrap()), "Password(..)");
    }
}
