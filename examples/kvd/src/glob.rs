//! Glob-style patterns, as Redis's `stringmatchlen` reads them, for `KEYS`,
//! `SCAN ... MATCH` and `CONFIG GET`.
//!
//! `*` any run of bytes, `?` one byte, `[abc]` `[^abc]` `[a-z]` a class
//! (reversed ranges are swapped; an unclosed class runs to the end of the
//! pattern), `\x` the byte `x` (also inside a class). Matching is greedy
//! with one backtrack point, so it is linear in the pattern times the
//! subject, whatever the pattern: a client cannot make it explode.

/// One element of a pattern.
#[derive(Debug, Clone, Copy)]
enum Token<'p> {
    Star,
    Any,
    Byte(u8),
    /// The class's contents (between the brackets) and whether negated.
    Class(&'p [u8], bool),
}

/// The token at `p[i..]` and the index after it.
fn token(p: &[u8], i: usize) -> (Token<'_>, usize) {
    match p[i] {
        b'*' => (Token::Star, i + 1),
        b'?' => (Token::Any, i + 1),
        b'\\' if i + 1 < p.len() => (Token::Byte(p[i + 1]), i + 2),
        b'[' => {
            let mut j = i + 1;
            let negated = p.get(j) == Some(&b'^');
            if negated {
                j += 1;
            }
            let start = j;
            while j < p.len() && p[j] != b']' {
                j += if p[j] == b'\\' && j + 1 < p.len() { 2 } else { 1 };
            }
            let body = &p[start..j.min(p.len())];
            (Token::Class(body, negated), (j + 1).min(p.len()))
        }
        b => (Token::Byte(b), i + 1),
    }
}

fn class_matches(body: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && i + 1 < body.len() {
            if body[i + 1] == c {
                return true;
            }
            i += 2;
        } else if i + 2 < body.len() && body[i + 1] == b'-' {
            let (mut lo, mut hi) = (body[i], body[i + 2]);
            if lo > hi {
                core::mem::swap(&mut lo, &mut hi);
            }
            if (lo..=hi).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if body[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

/// Whether `subject` matches `pattern`.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, subject index).
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            let (tok, next) = token(pattern, p);
            match tok {
                Token::Star => {
                    backtrack = Some((next, s));
                    p = next;
                    continue;
                }
                _ if s < subject.len() => {
                    let c = subject[s];
                    let ok = match tok {
                        Token::Any => true,
                        Token::Byte(b) => b == c,
                        Token::Class(body, negated) => class_matches(body, c) != negated,
                        Token::Star => unreachable!(),
                    };
                    if ok {
                        p = next;
                        s += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if s == subject.len() {
            return true;
        }
        // Mismatch: let the last star take one more byte.
        match backtrack {
            Some((bp, bs)) if bs < subject.len() => {
                backtrack = Some((bp, bs + 1));
                p = bp;
                s = bs + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, s: &str) -> bool {
        matches(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("key:*", "key:1"));
        assert!(!m("key:*", "ke"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("**", "ab"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("x[abc", "xb"), "an unclosed class runs to the end");
        assert!(m("a\\", "a\\"));
    }

    #[test]
    fn no_exponential_blowup() {
        let subject = "a".repeat(10_000);
        let pattern = "*a".repeat(50) + "b";
        assert!(!matches(pattern.as_bytes(), subject.as_bytes()));
    }
}
