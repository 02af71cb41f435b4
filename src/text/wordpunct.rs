//! `str.lower()` and nltk's `WordPunctTokenizer` (`\w+|[^\w\s]+`) with Python's semantics.
//!
//! DSIR's reference lowercases with CPython's `str.lower()` and tokenizes with the pattern
//! `\w+|[^\w\s]+` compiled by Python's `re`: a character is a word character when
//! `str.isalnum()` is true or it is `_`, whitespace when `str.isspace()` is true. Those classes
//! differ from Rust's `char::is_alphanumeric` / `char::is_whitespace` (combining marks, some
//! Indic signs, U+001C..U+001F are whitespace to Python, ...), so the classes and the lowercase
//! mapping come from tables generated from Python 3.11 itself (`scripts/gen_pyunicode.py`).
//! Matching is greedy and left to right, as `re.findall` does: a run of word characters is a
//! token, a run of characters that are neither word nor whitespace is a token.

use super::pyunicode_tables::{CASED, CASE_IGNORABLE, LOWER, SPACE, WORD};

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Python's `re` `\w` for a str pattern.
#[inline]
pub fn is_py_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        in_ranges(WORD, c)
    }
}

/// Python's `re` `\s` (`str.isspace()`).
#[inline]
pub fn is_py_space(c: char) -> bool {
    if c.is_ascii() {
        matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1f')
    } else {
        in_ranges(SPACE, c)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Space,
    Punct,
}

/// Classes of the ASCII characters, indexed by byte.
static ASCII_CLASS: [Class; 128] = {
    let mut t = [Class::Punct; 128];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = if c.is_ascii_alphanumeric() || c == b'_' {
            Class::Word
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f) {
            Class::Space
        } else {
            Class::Punct
        };
        i += 1;
    }
    t
};

#[inline]
fn class(c: char) -> Class {
    if c.is_ascii() {
        ASCII_CLASS[c as usize]
    } else if is_py_word(c) {
        Class::Word
    } else if is_py_space(c) {
        Class::Space
    } else {
        Class::Punct
    }
}

/// Byte spans of the wordpunct tokens of `s` (already lowercased), appended to `out`.
///
/// ASCII text is classified 64 bytes at a time into bit masks (word, space; the rest is
/// punctuation), and tokens start and end where the class changes: the masks give every
/// boundary of a block at once, so no branch waits on each byte's class (a byte loop
/// mispredicts at most token ends). A window with a non-ASCII byte goes a character at a time.
/// Tokens are pushed with their start when it is seen and get their end when that is seen
/// (they end in the order they start), so the two kinds of boundary need no interleaving.
pub fn wordpunct_spans(s: &str, out: &mut Vec<(u32, u32)>) {
    class_spans::<true>(s, out);
}

/// The runs of one class of `s`, appended to `out`: word characters, and with `PUNCT` also
/// the runs of characters that are neither word nor whitespace (as the block comment on
/// [`wordpunct_spans`] says).
#[inline]
fn class_spans<const PUNCT: bool>(s: &str, out: &mut Vec<(u32, u32)>) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    // The first token in `out` still without its end.
    let mut open = out.len();
    let mut cur = Class::Space;
    let mut i = 0;
    while i < n {
        let rem = n - i;
        let block: [u8; 64] = match bytes.get(i..i + 64) {
            Some(b) => b.try_into().expect("64 bytes"),
            None => {
                // The tail, padded with spaces: a token open at its end ends at `n`.
                let mut b = [b' '; 64];
                b[..rem].copy_from_slice(&bytes[i..]);
                b
            }
        };
        if let Some((w, sp)) = ascii_masks(&block) {
            // Without PUNCT, punctuation separates words as whitespace does.
            let (sp, p) = if PUNCT { (sp, !(w | sp)) } else { (!w, 0) };
            // Each byte's class against the class of the byte before it (the last block's).
            let w_prev = (w << 1) | u64::from(cur == Class::Word);
            let p_prev = (p << 1) | u64::from(cur == Class::Punct);
            let change = (w ^ w_prev) | (p ^ p_prev);
            let (starts, ends) = (change & !sp, change & (w_prev | p_prev));
            out.reserve(starts.count_ones() as usize);
            let at = i as u32;
            let mut m = starts;
            while m != 0 {
                out.push((at + m.trailing_zeros(), 0));
                m &= m - 1;
            }
            let mut m = ends;
            while m != 0 {
                out[open].1 = at + m.trailing_zeros();
                open += 1;
                m &= m - 1;
            }
            cur = if w >> 63 != 0 {
                Class::Word
            } else if sp >> 63 != 0 {
                Class::Space
            } else {
                Class::Punct
            };
            i += rem.min(64);
            continue;
        }
        // A character at a time to the end of this window (or of the character crossing it).
        let stop = (i + 64).min(n);
        while i < stop {
            let b = bytes[i];
            let (k, len) = if b < 0x80 {
                (ASCII_CLASS[b as usize], 1)
            } else {
                let c = s[i..].chars().next().expect("in bounds");
                (class(c), c.len_utf8())
            };
            let k = if !PUNCT && k == Class::Punct { Class::Space } else { k };
            if k != cur {
                if cur != Class::Space {
                    out[open].1 = i as u32;
                    open += 1;
                }
                if k != Class::Space {
                    out.push((i as u32, 0));
                }
                cur = k;
            }
            i += len;
        }
    }
    if cur != Class::Space {
        out[open].1 = n as u32;
        open += 1;
    }
    debug_assert_eq!(open, out.len());
}

/// Bit j of the masks: byte j of the block is a word character (ASCII alphanumeric or `_`),
/// or whitespace to Python (`\t`..`\r`, U+001C..U+001F, space). None if the block has a
/// non-ASCII byte.
#[inline]
fn ascii_masks(block: &[u8; 64]) -> Option<(u64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
            _mm_setzero_si128, _mm_sub_epi8, _mm_subs_epu8,
        };
        // SAFETY (every block below): SSE2 is part of x86-64; the one load reads 16 bytes
        // inside `block`.
        let in_range = |v: __m128i, lo: u8, n: u8| unsafe {
            // (v - lo) < n, unsigned: saturating (v - lo) - (n - 1) is zero.
            let d = _mm_sub_epi8(v, _mm_set1_epi8(lo as i8));
            _mm_cmpeq_epi8(_mm_subs_epu8(d, _mm_set1_epi8((n - 1) as i8)), _mm_setzero_si128())
        };
        let (mut w, mut sp, mut high) = (0u64, 0u64, 0u32);
        for q in 0..4 {
            let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * q).cast()) };
            let (word, space) = unsafe {
                let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
                let alnum = _mm_or_si128(in_range(lower, b'a', 26), in_range(v, b'0', 10));
                let word = _mm_or_si128(alnum, _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8)));
                (word, _mm_or_si128(in_range(v, 0x09, 5), in_range(v, 0x1c, 5)))
            };
            let bits = |m: __m128i| u64::from(unsafe { _mm_movemask_epi8(m) } as u16);
            high |= bits(v) as u32;
            w |= bits(word) << (16 * q);
            sp |= bits(space) << (16 * q);
        }
        (high == 0).then_some((w, sp))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        if block.iter().fold(0u8, |a, &b| a | b) >= 0x80 {
            return None;
        }
        let (mut w, mut sp) = (0u64, 0u64);
        for (j, &c) in block.iter().enumerate() {
            let k = ASCII_CLASS[c as usize];
            w |= u64::from(k == Class::Word) << j;
            sp |= u64::from(k == Class::Space) << j;
        }
        Some((w, sp))
    }
}

/// The byte-at-a-time definition of [`py_word_spans`], for tests.
#[cfg(test)]
fn py_word_spans_bytewise(s: &str, out: &mut Vec<(u32, u32)>) {
    out.clear();
    let bytes = s.as_bytes();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let (word, len) = match bytes[i] {
            b if b < 0x80 => (ASCII_CLASS[b as usize] == Class::Word, 1),
            // `i` is at a character boundary: every step is a whole character.
            _ => s[i..].chars().next().map_or((false, 1), |c| (is_py_word(c), c.len_utf8())),
        };
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(b)) => {
                out.push((b as u32, i as u32));
                start = None;
            }
            _ => {}
        }
        i += len;
    }
    if let Some(b) = start {
        out.push((b as u32, s.len() as u32));
    }
}

/// The byte-at-a-time definition of [`wordpunct_spans`], for tests.
#[cfg(test)]
fn wordpunct_spans_bytewise(s: &str, out: &mut Vec<(u32, u32)>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut start = 0usize;
    let mut cur = Class::Space;
    while i < bytes.len() {
        let c = s[i..].chars().next().expect("in bounds");
        let k = class(c);
        if k != cur {
            if cur != Class::Space {
                out.push((start as u32, i as u32));
            }
            start = i;
            cur = k;
        }
        i += c.len_utf8();
    }
    if cur != Class::Space {
        out.push((start as u32, i as u32));
    }
}

/// Tokens of `s` as strings (lowercased first), for tests and tools.
pub fn wordpunct_tokens(s: &str) -> Vec<String> {
    let mut lower = String::new();
    py_lower_into(s, &mut lower);
    let mut spans = Vec::new();
    wordpunct_spans(&lower, &mut spans);
    spans.iter().map(|&(a, b)| lower[a as usize..b as usize].to_string()).collect()
}

fn lower_of(c: char) -> Option<&'static [char]> {
    LOWER.binary_search_by_key(&(c as u32), |&(k, _)| k).ok().map(|i| LOWER[i].1)
}

/// CPython's Final_Sigma rule for U+03A3 at char index `i` of `chars`.
fn final_sigma(chars: &[char], i: usize) -> bool {
    let cased = |c: char| in_ranges(CASED, c);
    let ignorable = |c: char| in_ranges(CASE_IGNORABLE, c);
    let before = chars[..i].iter().rev().find(|c| !ignorable(**c));
    if !before.is_some_and(|c| cased(*c)) {
        return false;
    }
    let after = chars[i + 1..].iter().find(|c| !ignorable(**c));
    !after.is_some_and(|c| cased(*c))
}

/// The byte spans of Python's `re.findall(r"\w+", s)`: the runs of word characters (ASCII 64
/// bytes at a time, as [`wordpunct_spans`]; other characters by [`is_py_word`]).
pub fn py_word_spans(s: &str, out: &mut Vec<(u32, u32)>) {
    out.clear();
    class_spans::<false>(s, out);
}

crate::simd::simd! {
    /// Append `s` lowercased to `out` and return true if `s` is ASCII; else return false, with
    /// a lowercased ASCII prefix of `s` appended. One pass over 32-byte blocks: checking,
    /// copying and lowercasing as three passes (`is_ascii`, `push_str`,
    /// `make_ascii_lowercase`, the last a byte at a time) took 4% of `select dsir`.
    fn lower_ascii_blocks(s: &[u8], out: &mut Vec<u8>) -> bool {
        const BLOCK: usize = 32;
        let mut blocks = s.chunks_exact(BLOCK);
        for block in &mut blocks {
            let mut any = 0u8;
            let mut lower = [0u8; BLOCK];
            for (l, &b) in lower.iter_mut().zip(block) {
                any |= b;
                *l = b | (u8::from(b.wrapping_sub(b'A') < 26) << 5);
            }
            if !any.is_ascii() {
                return false;
            }
            out.extend_from_slice(&lower);
        }
        let rest = blocks.remainder();
        if !rest.is_ascii() {
            return false;
        }
        out.extend(rest.iter().map(u8::to_ascii_lowercase));
        true
    }
}

/// `s.lower()` as CPython 3.11 computes it, written into `out` (cleared first).
pub fn py_lower_into(s: &str, out: &mut String) {
    out.clear();
    out.reserve(s.len());
    // SAFETY: only ASCII bytes are appended (a block with any other byte stops it before it is
    // appended), so `out` stays UTF-8.
    if lower_ascii_blocks(s.as_bytes(), unsafe { out.as_mut_vec() }) {
        return;
    }
    out.clear();
    py_lower_chars(s, out);
}

/// [`py_lower_into`] a character at a time, appended to `out`.
fn py_lower_chars(s: &str, out: &mut String) {
    let has_sigma = s.contains('\u{03A3}');
    let chars: Vec<char> = if has_sigma { s.chars().collect() } else { Vec::new() };
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c == '\u{03A3}' {
            out.push(if final_sigma(&chars, i) { '\u{03C2}' } else { '\u{03C3}' });
        } else {
            match lower_of(c) {
                Some(l) => out.extend(l.iter()),
                None => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn word_spans_are_re_w_plus() {
        let spans = |s: &str| {
            let mut v = Vec::new();
            py_word_spans(s, &mut v);
            v.iter().map(|&(a, b)| s[a as usize..b as usize].to_string()).collect::<Vec<_>>()
        };
        assert_eq!(spans("Don't stop_me, now! 42x"), ["Don", "t", "stop_me", "now", "42x"]);
        assert_eq!(spans("naïve café—ΟΔΟΣ २३"), ["naïve", "café", "ΟΔΟΣ", "२३"]);
        assert_eq!(spans(""), Vec::<String>::new());
        assert_eq!(spans(" ... "), Vec::<String>::new());
        // Each run agrees with the char classes, whatever the mix.
        let mixed = "a\u{0301}b c\u{200b}d e\u{00a0}f";
        let want: Vec<String> =
            mixed.split(|c: char| !is_py_word(c)).filter(|w| !w.is_empty()).map(String::from).collect();
        assert_eq!(spans(mixed), want);
    }

    fn toks(s: &str) -> Vec<String> {
        wordpunct_tokens(s)
    }

    #[test]
    fn block_masks_are_the_ascii_classes() {
        // Every ASCII byte at every position of a block (two blocks hold 0..128 once; rotating
        // them puts each byte at each of the 64 positions).
        for shift in 0..64 {
            for half in 0..2u8 {
                let block: [u8; 64] = std::array::from_fn(|j| half * 64 + ((j + shift) % 64) as u8);
                let (w, sp) = ascii_masks(&block).expect("ASCII");
                for (j, &c) in block.iter().enumerate() {
                    let k = ASCII_CLASS[c as usize];
                    assert_eq!(w >> j & 1 == 1, k == Class::Word, "byte {c:#04x} at {j}");
                    assert_eq!(sp >> j & 1 == 1, k == Class::Space, "byte {c:#04x} at {j}");
                }
            }
        }
        let mut block = [b'a'; 64];
        block[37] = 0x80;
        assert_eq!(ascii_masks(&block), None, "a non-ASCII byte");
    }

    proptest! {
        /// The 64-byte blocks give the spans of the byte-at-a-time definition: texts of
        /// every length around the block size, ASCII classes and their edges, non-ASCII
        /// characters (Python's word, space and other classes) anywhere, blocks that hold one.
        #[test]
        fn block_spans_are_bytewise_spans(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9_]{1,9}",
                    "[ \t\n\r\x0b\x0c\x1c-\x1f]{1,3}",
                    "[!-/:-@\\[-`{-~\x00-\x08\x0e-\x1b\x7f]{1,4}",
                    "[é\u{0301}\u{00a0}\u{3000}—Ω२ß\u{1f600}]{1,2}",
                ],
                0..60,
            ),
            prefix in 0usize..3,
        ) {
            let text: String = parts.concat();
            let mut got = vec![(7, 9); prefix];
            wordpunct_spans(&text, &mut got);
            let mut want = vec![(7, 9); prefix];
            wordpunct_spans_bytewise(&text, &mut want);
            prop_assert_eq!(got, want);
            let (mut got, mut want) = (vec![(7, 9); prefix], Vec::new());
            py_word_spans(&text, &mut got);
            py_word_spans_bytewise(&text, &mut want);
            prop_assert_eq!(got, want);
        }

        /// Long ASCII texts: block after block with no character-at-a-time window, so the
        /// class of a block's last byte carries into the next one (words, spaces and
        /// punctuation runs across every block boundary).
        #[test]
        fn ascii_blocks_are_bytewise_spans(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9_]{1,70}",
                    "[ \t\n\r\x0b\x0c\x1c-\x1f]{1,70}",
                    "[!-/:-@\\[-`{-~\x00-\x08\x0e-\x1b\x7f]{1,70}",
                ],
                0..40,
            ),
        ) {
            let text: String = parts.concat();
            let (mut got, mut want) = (Vec::new(), Vec::new());
            wordpunct_spans(&text, &mut got);
            wordpunct_spans_bytewise(&text, &mut want);
            prop_assert_eq!(got, want);
            let (mut got, mut want) = (Vec::new(), Vec::new());
            py_word_spans(&text, &mut got);
            py_word_spans_bytewise(&text, &mut want);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn splits_words_and_punctuation_runs() {
        assert_eq!(
            toks("Good muffins cost $3.88\nin New York."),
            ["good", "muffins", "cost", "$", "3", ".", "88", "in", "new", "york", "."]
        );
        assert_eq!(toks("don't!!! ...yes?!"), ["don", "'", "t", "!!!", "...", "yes", "?!"]);
        assert_eq!(toks("snake_case x2 __init__"), ["snake_case", "x2", "__init__"]);
        assert_eq!(toks(""), Vec::<String>::new());
        assert_eq!(toks("   \t\n "), Vec::<String>::new());
    }

    #[test]
    fn python_whitespace_classes() {
        // U+001C..U+001F are whitespace to Python (not to Rust's char::is_whitespace).
        assert_eq!(toks("a\u{1c}b\u{1d}c\u{1e}d\u{1f}e"), ["a", "b", "c", "d", "e"]);
        assert_eq!(toks("a\u{a0}b\u{2003}c\u{3000}d"), ["a", "b", "c", "d"]);
        // U+200B ZERO WIDTH SPACE is not whitespace to Python: it is punctuation.
        assert_eq!(toks("a\u{200b}b"), ["a", "\u{200b}", "b"]);
    }

    #[test]
    fn non_ascii_letters_marks_and_emoji() {
        assert_eq!(toks("Ünïcödé Straße ΑΒΓ"), ["ünïcödé", "straße", "αβγ"]);
        // A combining mark is not alphanumeric to Python: it splits the word.
        assert_eq!(toks("e\u{301}cole"), ["e", "\u{301}", "cole"]);
        // Devanagari vowel signs (Mc/Mn) are not \w in Python's re.
        assert_eq!(toks("हिन्दी"), ["ह", "ि", "न", "्", "द", "ी"]);
        assert_eq!(toks("hi 👋🏽 there"), ["hi", "👋🏽", "there"]);
        // Superscripts and fractions are numeric, so \w.
        assert_eq!(toks("x² ½"), ["x²", "½"]);
    }

    #[test]
    fn ascii_table_agrees_with_the_classes() {
        for b in 0u8..128 {
            let c = b as char;
            let want = if is_py_word(c) {
                Class::Word
            } else if is_py_space(c) {
                Class::Space
            } else {
                Class::Punct
            };
            assert!(ASCII_CLASS[b as usize] == want, "byte {b}");
        }
    }

    /// Spans by the char classes, one char at a time: the oracle of the scans.
    fn naive_spans(s: &str, class_of: impl Fn(char) -> Option<u8>) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut run: Option<(usize, u8)> = None;
        for (i, c) in s.char_indices() {
            let k = class_of(c);
            if run.map(|r| r.1) != k {
                if let Some((start, _)) = run {
                    out.push((start as u32, i as u32));
                }
                run = k.map(|k| (i, k));
            }
        }
        if let Some((start, _)) = run {
            out.push((start as u32, s.len() as u32));
        }
        out
    }

    #[test]
    fn lowering_by_blocks_falls_back_at_any_block_edge() {
        for at in [0, 1, 31, 32, 33, 63, 64, 65] {
            for other in ["É", "Σ", "👋"] {
                let s = format!("{}{other}{}", "AbZ_".repeat(20).get(..at).unwrap(), "Q.x".repeat(12));
                let mut got = String::new();
                py_lower_into(&s, &mut got);
                let mut want = String::new();
                py_lower_chars(&s, &mut want);
                assert_eq!(got, want, "non-ASCII at byte {at}");
            }
        }
        let mut got = String::new();
        py_lower_into(&"ÀZ".repeat(40), &mut got);
        assert_eq!(got, "àz".repeat(40));
    }

    proptest! {
        #[test]
        fn lowering_by_blocks_is_lowering_by_chars(
            s in prop_oneof![
                // ASCII only (whole blocks lowercased and kept), and ASCII with a few others.
                "[\\x00-\\x7f]{0,200}",
                proptest::collection::vec(
                    prop_oneof![
                        8 => proptest::char::range('\u{0}', '\u{7f}'),
                        1 => proptest::sample::select(vec!['É', 'Σ', 'İ', '\u{80}', '👋']),
                    ],
                    0..100,
                ).prop_map(|v| v.into_iter().collect::<String>()),
            ]
        ) {
            let mut got = String::from("left over");
            py_lower_into(&s, &mut got);
            let mut want = String::new();
            py_lower_chars(&s, &mut want);
            prop_assert_eq!(&got, &want);
            if s.is_ascii() {
                prop_assert_eq!(got, s.to_ascii_lowercase());
            }
        }

        #[test]
        fn the_scans_split_as_the_char_classes(
            s in proptest::collection::vec(
                prop_oneof![
                    proptest::char::range('\u{0}', '\u{7f}'),
                    proptest::sample::select(vec!['a', 'Z', '_', '9', ' ', '\t', '\u{1c}', '.', ',', '\u{a0}', 'é', '\u{301}', '\u{200b}', '२', '👋']),
                ],
                0..80,
            ).prop_map(|v| v.into_iter().collect::<String>())
        ) {
            let mut got = Vec::new();
            wordpunct_spans(&s, &mut got);
            let want = naive_spans(&s, |c| match class(c) {
                Class::Word => Some(0),
                Class::Punct => Some(1),
                Class::Space => None,
            });
            prop_assert_eq!(got, want);
            let mut got = Vec::new();
            py_word_spans(&s, &mut got);
            prop_assert_eq!(got, naive_spans(&s, |c| is_py_word(c).then_some(0)));
        }
    }

    #[test]
    fn python_lowercasing() {
        let mut out = String::new();
        py_lower_into("İSTANBUL", &mut out);
        assert_eq!(out, "i\u{307}stanbul");
        py_lower_into("ΟΔΟΣ ΟΔΟΣ.", &mut out);
        assert_eq!(out, "οδος οδος.");
        py_lower_into("Σ", &mut out);
        assert_eq!(out, "σ");
    }
}
