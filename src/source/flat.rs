//! A one-pass scanner for the common jsonl line: one JSON object whose keys have no escapes
//! (its values anything: nested objects and arrays are kept as their raw text).
//!
//! serde_json with `RawValue` walks each string to find its end, and the decoder walked the
//! text again for its escapes; this scanner finds every value's raw JSON text and where a
//! string's first escape is in one pass, 16 bytes at a time. It accepts only lines that
//! serde_json accepts and gives the same raw values: anything else (an escaped key at the top
//! level, nesting past 64 levels, a syntax error) returns `None`, and the line goes to
//! serde_json, whose results and messages stay the rule
//! (`tests::the_scanner_agrees_with_serde` checks both on random lines).

/// One value of a line: its JSON text and, for a string, where its first backslash is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Value<'a> {
    pub raw: &'a str,
    pub escape: Escape,
}

/// Where a string value's first backslash is, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escape {
    /// Not looked for (serde's values).
    Unknown,
    /// None (or not a string).
    None,
    /// At this byte of the value's raw text.
    At(usize),
}

/// Scan `line`, calling `field` with each key and its value in order. `None`: the line is not
/// one this scanner takes (`field` may have been called for some of its fields).
pub(super) fn scan<'a>(line: &'a str, mut field: impl FnMut(&'a str, Value<'a>)) -> Option<()> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (end, escape) = string_end(b, i + 1)?;
            if escape.is_some() {
                return None;
            }
            let key = &line[i + 1..end];
            i = skip_ws(b, end + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let start = i;
            let escape = match *b.get(i)? {
                b'"' => {
                    let (end, escape) = string_end(b, i + 1)?;
                    i = end + 1;
                    escape.map_or(Escape::None, |e| Escape::At(e - start))
                }
                _ => {
                    i = value_end(b, i, 0)?;
                    Escape::None
                }
            };
            field(key, Value { raw: &line[start..i], escape });
            i = skip_ws(b, i);
            match *b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(())
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// Nesting deeper than this goes to serde_json (whose own limit is 128 levels).
const MAX_DEPTH: usize = 64;

/// The end of the value starting at `i`: a string, number, literal, or an object or array
/// nested `depth` levels down (kept as its raw text, checked as serde_json checks a value it
/// passes over: keys are strings, escapes valid, no trailing comma).
fn value_end(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => Some(string_end(b, i + 1)?.0 + 1),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => number_end(b, i),
        b'{' | b'[' if depth < MAX_DEPTH => nested_end(b, i, depth),
        _ => None,
    }
}

/// The end of the object or array starting at `i`.
fn nested_end(b: &[u8], mut i: usize, depth: usize) -> Option<usize> {
    let close = if b[i] == b'{' { b'}' } else { b']' };
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&close) {
        return Some(i + 1);
    }
    loop {
        if close == b'}' {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            i = skip_ws(b, string_end(b, i + 1)?.0 + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
        }
        i = skip_ws(b, value_end(b, i, depth + 1)?);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            c if c == close => return Some(i + 1),
            _ => return None,
        }
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// The end of a JSON number starting at `i` (its grammar only: what follows is the caller's).
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b[i] == b'-' {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let j = digits(i + 1);
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let j = digits(i);
        if j == i {
            return None;
        }
        i = j;
    }
    Some(i)
}

/// The closing quote of the string whose contents start at `i`, and its first backslash.
/// `None` where serde_json would reject the string: a control character, a bad escape, no end.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, Option<usize>)> {
    let mut first = None;
    loop {
        i = special(b, i)?;
        match b[i] {
            b'"' => return Some((i, first)),
            b'\\' => {
                first.get_or_insert(i);
                i += match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                };
            }
            _ => return None, // a control character
        }
    }
}

/// The first byte at or after `i` that is a quote, a backslash or below 0x20.
#[inline]
fn special(b: &[u8], i: usize) -> Option<usize> {
    first_of::<true>(b, i)
}

/// The first backslash at or after `i` (escapes in text are often a few words apart: a
/// 16-byte step inline costs less than a call that sets up wider ones).
#[inline]
pub(super) fn backslash(b: &[u8], i: usize) -> Option<usize> {
    first_of::<false>(b, i)
}

/// The first backslash at or after `i`, or with `SPECIAL` the first backslash, quote or byte
/// below 0x20, 16 bytes at a time.
#[inline(always)]
fn first_of<const SPECIAL: bool>(b: &[u8], mut i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is part of x86-64; the 16 bytes at `i` are in `b`.
            let mask = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
                let mut hit = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                if SPECIAL {
                    let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                    // v <= 0x1f (unsigned): max(v, 0x1f) == 0x1f.
                    let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
                    hit = _mm_or_si128(hit, _mm_or_si128(quote, control));
                }
                _mm_movemask_epi8(hit)
            };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
    }
    let found = |c: u8| c == b'\\' || (SPECIAL && (c == b'"' || c < 0x20));
    b[i.min(b.len())..].iter().position(|&c| found(c)).map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    /// Keys and raw values, in order, by the scanner.
    fn scanned(line: &str) -> Option<Vec<(String, String, Escape)>> {
        let mut out = Vec::new();
        scan(line, |k, v| out.push((k.to_string(), v.raw.to_string(), v.escape)))?;
        Some(out)
    }

    /// Keys and raw values, in order, by serde_json (None: it rejects the line).
    fn by_serde(line: &str) -> Option<Vec<(String, String)>> {
        let map: Vec<(String, &RawValue)> = {
            struct Fields<'a>(Vec<(String, &'a RawValue)>);
            impl<'de> serde::Deserialize<'de> for Fields<'de> {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl<'de> serde::de::Visitor<'de> for V {
                        type Value = Fields<'de>;
                        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                            f.write_str("an object")
                        }
                        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Fields<'de>, A::Error> {
                            let mut v = Vec::new();
                            while let Some(k) = m.next_key::<String>()? {
                                v.push((k, m.next_value::<&RawValue>()?));
                            }
                            Ok(Fields(v))
                        }
                    }
                    d.deserialize_map(V)
                }
            }
            serde_json::from_str::<Fields>(line).ok()?.0
        };
        Some(map.into_iter().map(|(k, v)| (k, v.get().to_string())).collect())
    }

    #[test]
    fn flat_objects_are_scanned() {
        let line = " {\"id\": 7, \"y\": [1, {\"k\\n\": [[], {}]}, \"s\"] , \"z\": { } }\r";
        assert_eq!(
            scanned(line).unwrap(),
            [
                ("id".into(), "7".into(), Escape::None),
                ("y".into(), "[1, {\"k\\n\": [[], {}]}, \"s\"]".into(), Escape::None),
                ("z".into(), "{ }".into(), Escape::None),
            ]
        );
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(scanned(&deep), None, "nesting past 64 levels: serde's");
        let line = " {\"id\": 7, \"text\" :\"a\\nb \\u00e9\",\"x\":null, \"z\": -0.5e+3, \"t\": true}\r";
        assert_eq!(
            scanned(line).unwrap(),
            [
                ("id".into(), "7".into(), Escape::None),
                ("text".into(), "\"a\\nb \\u00e9\"".into(), Escape::At(2)),
                ("x".into(), "null".into(), Escape::None),
                ("z".into(), "-0.5e+3".into(), Escape::None),
                ("t".into(), "true".into(), Escape::None),
            ]
        );
        assert_eq!(scanned("{}").unwrap(), []);
        // A long string: the 16-byte steps, with the escape past the first block.
        let long = format!("{{\"text\": \"{}\\\"{}\"}}", "a".repeat(40), "b".repeat(20));
        assert_eq!(scanned(&long).unwrap()[0].2, Escape::At(41));
    }

    #[test]
    fn backslashes_are_found_in_and_past_blocks() {
        let mut b = vec![b'a'; 70];
        assert_eq!(backslash(&b, 0), None);
        for at in [0, 15, 16, 31, 47, 63, 64, 69] {
            b[at] = b'\\';
            for from in [0, at / 2, at.saturating_sub(3), at] {
                assert_eq!(backslash(&b, from), Some(at), "at {at} from {from}");
            }
            assert_eq!(backslash(&b, at + 1), None);
            b[at] = b'a';
        }
        assert_eq!(backslash(&b, 80), None);
    }

    #[test]
    fn what_serde_rejects_is_not_scanned() {
        for line in [
            "",
            "[]",
            "{",
            "{\"a\": 1,}",
            "{\"a\" 1}",
            "{\"a\": 01}",
            "{\"a\": 1.}",
            "{\"a\": .5}",
            "{\"a\": -}",
            "{\"a\": 1e}",
            "{\"a\": tru}",
            "{\"a\": \"x\\q\"}",
            "{\"a\": \"x\\u12g4\"}",
            "{\"a\": \"tab\there\"}",
            "{\"a\": \"no end}",
            "{\"a\": 1} x",
            "{\"a\": 1}}",
        ] {
            assert_eq!(scanned(line), None, "{line:?}");
            assert_eq!(by_serde(line), None, "{line:?}");
        }
        for line in ["{\"a\": [1,]}", "{\"a\": {\"b\" 1}}", "{\"a\": {1: 2}}", "{\"a\": [1 2]}", "{\"a\": {\"b\": 1,}}"]
        {
            assert_eq!(scanned(line), None, "{line:?}");
            assert_eq!(by_serde(line), None, "{line:?}");
        }
        // Valid, but not the scanner's: serde decides.
        let line = "{\"t\\u0065xt\": \"x\"}";
        assert_eq!(scanned(line), None);
        assert!(by_serde(line).is_some());
    }

    /// Pieces of lines, valid and not, joined at random.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "\"",
            ":",
            ",",
            " ",
            "\t",
            "\r\n",
            "\"text\"",
            "\"id\"",
            "\"a\"",
            "\"\\u0074\"",
            "\\",
            "\\n",
            "\\\"",
            "\\u00e9",
            "\\ud800",
            "\\u12",
            "\\x",
            "abc",
            "\u{e9}",
            "\u{1}",
            "0",
            "-",
            "12",
            ".5",
            "e+3",
            "E",
            "true",
            "false",
            "null",
            "nul",
            "[",
            "]",
            "[1, 2]",
            "{\"b\": 1}",
            "[[",
            "]]",
            "{}",
            "[]",
            "{\"k\\\\n\": [",
        ])
    }

    proptest! {
        #[test]
        fn the_scanner_agrees_with_serde(pieces in prop::collection::vec(piece(), 0..24), shape in 0..3u8) {
            let body: String = pieces.concat();
            // Half the cases as one object's fields, to reach valid lines often.
            let line = match shape {
                0 => body,
                1 => format!("{{\"text\": \"{body}\"}}"),
                _ => format!("{{\"id\": {body}, \"text\": \"x\"}}"),
            };
            if let Some(fields) = scanned(&line) {
                let serde = by_serde(&line);
                prop_assert!(serde.is_some(), "scanned what serde rejects: {line:?}");
                let plain: Vec<(String, String)> = fields.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(serde.unwrap(), plain);
                for (_, raw, escape) in fields {
                    let first = raw.starts_with('"').then(|| raw.find('\\')).flatten();
                    prop_assert_eq!(escape, first.map_or(Escape::None, Escape::At));
                }
            }
        }
    }
}
