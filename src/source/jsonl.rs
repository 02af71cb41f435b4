//! jsonl: one JSON object per line. [`JsonlDecoder`] turns lines into Arrow columns and does
//! no IO; [`JsonlFileReader`] reads lines from a (possibly compressed) file and feeds it.
//!
//! Only the text, the id and the requested extra fields are decoded; other values stay raw
//! JSON slices of the line. A line that is an object whose keys have no escapes is scanned in
//! one pass ([`super::flat`]); any other goes to serde_json, which decides what is valid.
//! Blank lines are not records. A line that is not valid UTF-8, not JSON, not an object, or
//! lacks a string text field is a bad record.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, StringBuilder};
use arrow::datatypes::DataType;
use indexmap::IndexSet;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::flat::{self, Escape, Value};
use super::{Codec, InputFile, ReadContext, MAX_BATCH_TEXT_BYTES};
use crate::batch::RecordBatch;
use crate::error::{Error, Location, Result};

/// A JSON string, borrowed from the line when it has no escapes.
#[derive(Deserialize)]
#[serde(transparent)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// The parts of one row the decoder needs.
struct Row<'a> {
    text: Option<Value<'a>>,
    id: Option<Value<'a>>,
    extras: Vec<Option<Value<'a>>>,
}

impl<'a> Row<'a> {
    /// Keep `value` if `key` is the text, the id or a requested extra field. Returns whether
    /// `key` is neither the text nor the id (a field the lake has besides them).
    fn put(
        &mut self,
        key: &str,
        value: Value<'a>,
        text_field: &str,
        id_field: &str,
        extras: &rustc_hash::FxHashMap<String, usize>,
    ) -> bool {
        if key == text_field {
            self.text = Some(value);
        } else if key == id_field {
            self.id = Some(value);
        } else {
            if let Some(&i) = extras.get(key) {
                self.extras[i] = Some(value);
            }
            return true;
        }
        false
    }
}

/// serde's raw value as the scanner's.
fn raw(v: &RawValue) -> Value<'_> {
    Value { raw: v.get(), escape: Escape::Unknown }
}

struct RowSeed<'c> {
    text_field: &'c str,
    id_field: &'c str,
    /// Extra field name -> its column.
    extras: &'c rustc_hash::FxHashMap<String, usize>,
    fields_seen: &'c mut IndexSet<String>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut row = Row { text: None, id: None, extras: vec![None; self.extras.len()] };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let key = key.0;
            let value = raw(map.next_value::<&'de RawValue>()?);
            if row.put(&key, value, self.text_field, self.id_field, self.extras)
                && !self.fields_seen.contains(key.as_ref())
            {
                self.fields_seen.insert(key.to_string());
            }
        }
        Ok(row)
    }
}

/// The JSON kind of a raw value, for messages.
fn kind(v: Value) -> &'static str {
    match v.raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        _ => "a number",
    }
}

/// The text of a JSON string value: borrowed from the line when it has no escape, else decoded
/// into `scratch`. None when `v` is not a string, or when, as serde_json's rule for text has
/// it, an escape is invalid or a UTF-16 surrogate is unpaired (`v` was parsed as JSON, so the
/// string has no raw control character).
fn decode_str<'a>(v: Value<'a>, scratch: &'a mut String) -> Option<&'a str> {
    let raw = v.raw;
    if raw.len() < 2 || !raw.starts_with('"') {
        return None;
    }
    let body = &raw[1..raw.len() - 1];
    let first = match v.escape {
        Escape::Unknown => memchr::memchr(b'\\', body.as_bytes()),
        Escape::None => None,
        Escape::At(i) => Some(i - 1),
    };
    let Some(first) = first else {
        return Some(body);
    };
    scratch.clear();
    unescape(body, first, scratch)?;
    Some(scratch.as_str())
}

/// Append `body` (a JSON string's contents whose first backslash is at `at`) to `out` with its
/// escapes decoded.
fn unescape(body: &str, mut at: usize, out: &mut String) -> Option<()> {
    let b = body.as_bytes();
    let hex4 =
        |h: &[u8]| -> Option<u16> { h.iter().try_fold(0u16, |n, &c| Some(n << 4 | (c as char).to_digit(16)? as u16)) };
    out.reserve(body.len());
    let mut start = 0;
    loop {
        out.push_str(&body[start..at]);
        let mut next = at + 2;
        match *b.get(at + 1)? {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let n = hex4(b.get(next..next + 4)?)?;
                next += 4;
                let c = match n {
                    0xDC00..=0xDFFF => return None,
                    0xD800..=0xDBFF => {
                        // A leading surrogate: its trailing one must follow.
                        if b.get(next..next + 2)? != b"\\u" {
                            return None;
                        }
                        let low = hex4(b.get(next + 2..next + 6)?)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        next += 6;
                        0x1_0000 + ((u32::from(n - 0xD800) << 10) | u32::from(low - 0xDC00))
                    }
                    n => u32::from(n),
                };
                out.push(char::from_u32(c)?);
            }
            _ => return None,
        }
        start = next;
        match flat::backslash(b, start) {
            Some(i) => at = i,
            None => {
                out.push_str(&body[start..]);
                return Some(());
            }
        }
    }
}

/// A serde_json message without its "at line 1 column N" suffix.
fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rsplit_once(" at line ") {
        Some((msg, _)) => msg.to_string(),
        None => s,
    }
}

/// Turns jsonl lines into batches of `id`, text and the requested extra columns.
pub struct JsonlDecoder {
    text_field: String,
    id_field: String,
    file_name: String,
    /// Extra field name -> its column (a map: a lake can have many thousands of fields).
    extra_names: rustc_hash::FxHashMap<String, usize>,
    /// A builder per extra column, or its type when this file never has that field.
    extras: Vec<Result<StringBuilder, DataType>>,
    /// False: the text field is neither required nor kept (every text is empty).
    read_text: bool,
    ids: StringBuilder,
    texts: StringBuilder,
    lines: Vec<u64>,
    rows: usize,
    text_bytes: usize,
    /// Where an escaped text, and an escaped id or extra value, are decoded.
    text_scratch: String,
    scratch: String,
    /// The keys of the last scanned line that are neither text nor id, as byte ranges.
    other_keys: Vec<(usize, usize)>,
    /// Lines go to [`flat::scan`] first (off in tests: serde_json's path alone).
    scanner: bool,
}

impl JsonlDecoder {
    /// Extra columns are UTF-8 (strings as they are, other values as JSON text); an extra
    /// column of another type is one this file does not have (see `lake_extras`): all null.
    pub fn new(text_field: &str, id_field: &str, file_name: &str, extras: &super::Extras) -> Self {
        let extra_names = extras.fields.iter().enumerate().map(|(i, f)| (f.name().clone(), i)).collect();
        let extras =
            extras
                .fields
                .iter()
                .map(|f| {
                    if *f.data_type() == DataType::Utf8 {
                        Ok(StringBuilder::new())
                    } else {
                        Err(f.data_type().clone())
                    }
                })
                .collect();
        JsonlDecoder {
            text_field: text_field.into(),
            id_field: id_field.into(),
            file_name: file_name.into(),
            extra_names,
            extras,
            read_text: true,
            ids: StringBuilder::new(),
            texts: StringBuilder::new(),
            lines: Vec::new(),
            rows: 0,
            text_bytes: 0,
            text_scratch: String::new(),
            scratch: String::new(),
            other_keys: Vec::new(),
            scanner: true,
        }
    }

    /// Leave the text field unread (see [`ReadOptions::read_text`](super::ReadOptions)).
    pub fn without_text(mut self) -> Self {
        self.read_text = false;
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn text_bytes(&self) -> usize {
        self.text_bytes
    }

    /// The row of a line by [`flat::scan`] (None: serde's to parse), with the keys that are
    /// neither text nor id in `other_keys`.
    fn scan<'a>(&mut self, s: &'a str) -> Option<Row<'a>> {
        if !self.scanner {
            return None;
        }
        let mut row = Row { text: None, id: None, extras: vec![None; self.extra_names.len()] };
        self.other_keys.clear();
        let base = s.as_ptr() as usize;
        flat::scan(s, |key, value| {
            if row.put(key, value, &self.text_field, &self.id_field, &self.extra_names) {
                let a = key.as_ptr() as usize - base;
                self.other_keys.push((a, a + key.len()));
            }
        })?;
        Some(row)
    }

    /// Decode one line (without its newline). `Err` is the reason the record is bad; nothing
    /// is appended then.
    pub fn decode_line(&mut self, line: &[u8], line_no: u64, fields_seen: &mut IndexSet<String>) -> Result<(), String> {
        let s =
            std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))?;
        let row = match self.scan(s) {
            Some(row) => {
                for &(a, b) in &self.other_keys {
                    if !fields_seen.contains(&s[a..b]) {
                        fields_seen.insert(s[a..b].to_string());
                    }
                }
                row
            }
            None => {
                let seed = RowSeed {
                    text_field: &self.text_field,
                    id_field: &self.id_field,
                    extras: &self.extra_names,
                    fields_seen,
                };
                let mut de = serde_json::Deserializer::from_str(s);
                seed.deserialize(&mut de).and_then(|row| de.end().map(|_| row)).map_err(|e| {
                    if e.is_data() && serde_json::from_str::<IgnoredAny>(s).is_ok() {
                        format!("not a JSON object: {}", json_message(&e))
                    } else {
                        format!("malformed JSON at column {}: {}", e.column(), json_message(&e))
                    }
                })?
            }
        };
        let text_field = &self.text_field;
        let text = match row.text {
            _ if !self.read_text => "",
            None => return Err(format!("missing field \"{text_field}\"")),
            Some(v) => match decode_str(v, &mut self.text_scratch) {
                Some(t) => t,
                None if v.raw.starts_with('"') => {
                    return Err(format!("field \"{text_field}\" is not a valid JSON string"))
                }
                None => return Err(format!("field \"{text_field}\" is {}, expected a string", kind(v))),
            },
        };
        match row.id.filter(|v| v.raw != "null") {
            Some(v) => match decode_str(v, &mut self.scratch) {
                Some(id) => self.ids.append_value(id),
                None => self.ids.append_value(v.raw),
            },
            None => self.ids.append_value(format!("{}:{}", self.file_name, line_no)),
        }
        self.text_bytes += text.len();
        self.texts.append_value(text);
        for (b, v) in self.extras.iter_mut().zip(row.extras) {
            if let Ok(b) = b {
                match v {
                    None => b.append_null(),
                    Some(v) if v.raw == "null" => b.append_null(),
                    Some(v) => match decode_str(v, &mut self.scratch) {
                        Some(s) => b.append_value(s),
                        None => b.append_value(v.raw),
                    },
                }
            }
        }
        self.lines.push(line_no);
        self.rows += 1;
        Ok(())
    }

    /// Line numbers of the rows decoded since the last flush.
    pub fn take_lines(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.lines)
    }

    /// The rows decoded since the last flush, as a batch of `schema`.
    pub fn flush(&mut self, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
        let n = self.rows;
        // The next batch starts with room for what this one held: a builder grown by doubling
        // copies its bytes about once more and touches fresh pages for each size it passes
        // through (the kernel zeroing them was a sixth of a DSIR fit's time).
        let (id_bytes, text_bytes) = (self.ids.values_slice().len(), self.texts.values_slice().len());
        let mut ids = std::mem::replace(&mut self.ids, StringBuilder::with_capacity(n, id_bytes + id_bytes / 8));
        let mut texts =
            std::mem::replace(&mut self.texts, StringBuilder::with_capacity(n, text_bytes + text_bytes / 8));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(ids.finish()), Arc::new(texts.finish())];
        for b in &mut self.extras {
            columns.push(match b {
                Ok(b) => Arc::new(b.finish()),
                Err(ty) => new_null_array(ty, n),
            });
        }
        self.rows = 0;
        self.text_bytes = 0;
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::arrow(format!("{}: building a batch", self.file_name), e))
    }
}

/// What [`read_line_bounded`] read.
pub(crate) struct Line {
    /// Bytes consumed, newline included (0 at the end of the file).
    pub bytes: u64,
    /// The line was longer than the limit: `buf` holds its first `limit` bytes only.
    pub over_limit: bool,
}

/// `read_until(b'\n')` that keeps at most `limit` bytes of a line in `buf` (the rest is
/// consumed and dropped), so one huge line cannot exhaust memory. jsonl sources and serve's
/// log and report socket read their lines with it.
pub(crate) fn read_line_bounded(r: &mut dyn BufRead, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<Line> {
    let mut bytes = 0u64;
    let mut over_limit = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(Line { bytes, over_limit });
        }
        let (take, done) = match memchr_newline(chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = limit.saturating_sub(buf.len());
        if take > room {
            over_limit = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        bytes += take as u64;
        if done {
            return Ok(Line { bytes, over_limit });
        }
    }
}

/// The next line (through its newline): in the reader's buffer when it is all there and within
/// `limit` (the length to `consume` once the slice is used comes with it), else read into `buf`
/// by [`read_line_bounded`] (consumed already). Most lines are the first case: no copy.
fn next_line<'b>(
    r: &'b mut (dyn BufRead + Send),
    buf: &'b mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(Line, Option<usize>, &'b [u8])> {
    let whole = match r.fill_buf() {
        Ok(chunk) => memchr_newline(chunk).filter(|&i| i < limit),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
        Err(e) => return Err(e),
    };
    if let Some(i) = whole {
        // Buffered already: this fill_buf reads nothing.
        let chunk = r.fill_buf()?;
        return Ok((Line { bytes: i as u64 + 1, over_limit: false }, Some(i + 1), &chunk[..=i]));
    }
    buf.clear();
    let line = read_line_bounded(r, buf, limit)?;
    Ok((line, None, buf.as_slice()))
}

/// One line read (`raw`, `n` bytes with its newline, line `line_no` starting at byte `start`):
/// a record decoded, a bad one rejected, nothing for a blank line.
fn take_line(
    decoder: &mut JsonlDecoder,
    ctx: &mut ReadContext<'_>,
    raw: &[u8],
    n: u64,
    over_limit: bool,
    line_no: u64,
    start: u64,
) -> Result<()> {
    if over_limit {
        // Only the first max_record_bytes were kept; the rest was skipped.
        ctx.stats.read += 1;
        let reason = format!(
            "a record of {n} bytes or more, over the limit of {} bytes (--max-record-bytes / source.max_record_bytes)",
            ctx.opts.max_record_bytes
        );
        return ctx.reject(Location::Line(line_no), Some(start), reason, &raw[..raw.len().min(4096)]);
    }
    let mut line = raw;
    if line_no == 1 {
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    }
    while let Some((b'\n' | b'\r', rest)) = line.split_last() {
        line = rest;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    ctx.stats.read += 1;
    match decoder.decode_line(line, line_no, &mut ctx.stats.fields_seen) {
        Ok(()) => ctx.stats.kept += 1,
        Err(reason) => ctx.reject(Location::Line(line_no), Some(start), reason, line)?,
    }
    Ok(())
}

/// Consume one line (through its newline) without keeping it: [`read_line_bounded`] with no
/// room, so nothing is copied.
fn skip_line(r: &mut dyn BufRead) -> std::io::Result<Line> {
    let line = read_line_bounded(r, &mut Vec::new(), 0)?;
    Ok(Line { over_limit: false, ..line })
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Reads a jsonl file line by line into batches.
pub(super) struct JsonlFileReader {
    reader: Box<dyn BufRead + Send>,
    codec: Codec,
    line_no: u64,
    offset: u64,
    buf: Vec<u8>,
    done: bool,
    decoder: Option<JsonlDecoder>,
    /// Index into the wanted lines, when reading a selection.
    next_wanted: usize,
    /// The file's size, for a plain local file (where `offset` is a position in it).
    size: Option<u64>,
}

/// Near the end of a plain file a batch also ends once it has read this fraction of what was
/// left of the file when it began (and at least [`TAIL_BATCH_MIN_BYTES`]): the last batches
/// shrink, so that the threads working on them finish nearly together instead of one working
/// alone on the last full batch (about 20 ms of featurizing in a DSIR fit of the bench lake).
/// Where batches end depends on the file alone, never on the thread count.
const TAIL_BATCH_PARTS: u64 = 8;

/// The smallest batch that [`TAIL_BATCH_PARTS`] cuts, in bytes of the file.
const TAIL_BATCH_MIN_BYTES: u64 = 256 << 10;

impl JsonlFileReader {
    pub(super) fn open(file: &InputFile, codec: Codec) -> Result<Self> {
        Self::open_at(file, codec, 0, 0)
    }

    /// Open `file` after its first `line_no` lines, which end at byte `offset` of its
    /// decompressed contents (a [`super::ReadPoint`] of an earlier reader).
    pub(super) fn open_at(file: &InputFile, codec: Codec, line_no: u64, offset: u64) -> Result<Self> {
        let size = super::StartPoints::readable_in_pieces(file)
            .then(|| std::fs::metadata(&file.path).ok().filter(|m| m.is_file()).map(|m| m.len()))
            .flatten();
        Ok(JsonlFileReader {
            reader: codec.open_at(&file.path, offset)?,
            codec,
            line_no,
            offset,
            buf: Vec::new(),
            done: false,
            decoder: None,
            next_wanted: 0,
            size,
        })
    }
}

impl super::FileReader for JsonlFileReader {
    fn position(&self) -> (u64, u64) {
        (self.line_no, self.offset)
    }

    fn next_batch(&mut self, ctx: &mut ReadContext<'_>) -> Result<Option<(RecordBatch, Vec<u64>)>> {
        let decoder = self.decoder.get_or_insert_with(|| {
            let d = JsonlDecoder::new(&ctx.opts.text_field, &ctx.opts.id_field, &ctx.file.name, ctx.extras);
            if ctx.opts.read_text {
                d
            } else {
                d.without_text()
            }
        });
        // Bytes of the file this batch may read: bounded near the end of a plain file, unless
        // a selection is read (its batches are cut again where they are written). Only a batch
        // that holds a row stops there: lines that give none (blank, rejected) read on, since
        // a batch of no rows is the end of the file.
        let (start, tail) = (self.offset, self.size.filter(|_| ctx.wanted.is_none()));
        let limit =
            tail.map_or(u64::MAX, |size| (size.saturating_sub(start) / TAIL_BATCH_PARTS).max(TAIL_BATCH_MIN_BYTES));
        while !self.done
            && decoder.rows() < ctx.opts.batch_rows
            && decoder.text_bytes() < MAX_BATCH_TEXT_BYTES
            && (decoder.rows() == 0 || self.offset - start < limit)
        {
            // Empty unless this line is read into it: a truncated stream's reject record holds
            // what is here, never an earlier line.
            self.buf.clear();
            // Reading a selection: a line not chosen is passed over, not copied.
            let wanted_next = match ctx.wanted {
                Some(wanted) => {
                    while self.next_wanted < wanted.len() && wanted[self.next_wanted] <= self.line_no {
                        self.next_wanted += 1;
                    }
                    if self.next_wanted >= wanted.len() {
                        self.done = true;
                        continue;
                    }
                    wanted[self.next_wanted] == self.line_no + 1
                }
                None => true,
            };
            let read = if wanted_next {
                next_line(&mut *self.reader, &mut self.buf, ctx.opts.max_record_bytes)
            } else {
                skip_line(&mut *self.reader).map(|l| (l, None, &[][..]))
            };
            match read {
                Ok((Line { bytes: n, .. }, _, _)) if n > 0 && !wanted_next => {
                    self.line_no += 1;
                    self.offset += n;
                }
                Ok((Line { bytes: 0, .. }, _, _)) => self.done = true,
                Ok((Line { bytes: n, over_limit }, in_buffer, raw)) => {
                    self.line_no += 1;
                    let start = self.offset;
                    self.offset += n;
                    let taken = take_line(decoder, ctx, raw, n, over_limit, self.line_no, start);
                    if let Some(len) = in_buffer {
                        self.reader.consume(len);
                    }
                    taken?;
                }
                Err(e) if self.codec.is_compressed() => {
                    self.done = true;
                    match ctx.opts.on_bad_record {
                        super::BadRecordPolicy::Fail => {
                            return Err(Error::Truncated { file: ctx.file.path.clone(), line: self.line_no, source: e })
                        }
                        super::BadRecordPolicy::Skip => {
                            ctx.stats.read += 1;
                            let reason = format!(
                                "compressed stream is truncated or corrupt here, the rest of the file is lost: {e}"
                            );
                            let raw = std::mem::take(&mut self.buf);
                            ctx.reject(Location::Line(self.line_no + 1), Some(self.offset), reason, &raw)?;
                        }
                    }
                }
                Err(e) => return Err(Error::io(&ctx.file.path, e)),
            }
        }
        if decoder.rows() > 0 {
            let batch = decoder.flush(ctx.schema)?;
            Ok(Some((batch, decoder.take_lines())))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{source_schema, Extras, ReadOptions};

    fn decode(line: &str) -> Result<(String, String), String> {
        let mut d = JsonlDecoder::new("text", "id", "f.jsonl", &Extras::none());
        let mut seen = IndexSet::new();
        d.decode_line(line.as_bytes(), 7, &mut seen)?;
        let b = d.flush(&source_schema(&ReadOptions::default(), &Extras::none())).unwrap();
        let id = crate::batch::id_column(&b).unwrap().value(0).to_string();
        let text = crate::batch::text_column(&b).unwrap().value(0).to_string();
        Ok((id, text))
    }

    /// A piece of a JSON string literal's contents: a character as it is, a short escape, a
    /// `\u` escape of any UTF-16 unit (lone surrogates included), or a surrogate pair.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<char>().prop_filter("allowed raw", |c| *c != '"' && *c != '\\' && *c >= ' ').prop_map(String::from),
            proptest::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])
                .prop_map(String::from),
            (any::<u16>(), any::<bool>()).prop_map(|(u, upper)| if upper {
                format!("\\u{u:04X}")
            } else {
                format!("\\u{u:04x}")
            }),
            (0x1_0000u32..=0x10_FFFF).prop_map(|c| {
                let c = c - 0x1_0000;
                format!("\\u{:04x}\\u{:04X}", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF))
            }),
        ]
    }

    proptest::proptest! {
        #[test]
        fn strings_decode_as_serde_json_decodes_them(pieces in proptest::collection::vec(piece(), 0..12)) {
            let raw = format!("\"{}\"", pieces.concat());
            let v: &RawValue = serde_json::from_str(&raw).unwrap();
            let mut scratch = String::new();
            let ours = decode_str(super::raw(v), &mut scratch).map(str::to_string);
            let serde = serde_json::from_str::<String>(&raw).ok();
            proptest::prop_assert_eq!(&ours, &serde, "{}", raw);
            // The same from where the scanner saw the first escape.
            let line = format!("{{\"text\": {raw}}}");
            let mut scanned = None;
            flat::scan(&line, |_, v| scanned = Some(v)).unwrap();
            let ours = decode_str(scanned.unwrap(), &mut scratch).map(str::to_string);
            proptest::prop_assert_eq!(ours, serde, "{}", raw);
        }
    }

    proptest::proptest! {
        /// Lines taken from the reader's buffer where they fit are the lines read_line_bounded
        /// copies out: same bytes, lengths and over-limit flags, whatever the buffer's size.
        #[test]
        fn lines_in_place_are_lines_copied(
            lines in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..20), 0..8),
            last_newline in proptest::bool::ANY,
            capacity in 1usize..16,
            limit in 1usize..25,
        ) {
            let mut body: Vec<u8> = Vec::new();
            for l in &lines {
                body.extend(l.iter().map(|&b| if b == b'\n' { b'x' } else { b }));
                body.push(b'\n');
            }
            if !last_newline && !body.is_empty() {
                body.pop();
            }
            let mut copied = Vec::new();
            let mut r = std::io::BufReader::with_capacity(capacity, body.as_slice());
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let l = read_line_bounded(&mut r, &mut buf, limit).unwrap();
                if l.bytes == 0 { break; }
                copied.push((l.bytes, l.over_limit, buf.clone()));
            }
            let mut in_place = Vec::new();
            let mut r: Box<dyn BufRead + Send> = Box::new(std::io::BufReader::with_capacity(capacity, std::io::Cursor::new(body.clone())));
            loop {
                let (l, consume, raw) = next_line(&mut *r, &mut buf, limit).unwrap();
                if l.bytes == 0 { break; }
                in_place.push((l.bytes, l.over_limit, raw.to_vec()));
                if let Some(n) = consume {
                    r.consume(n);
                }
            }
            proptest::prop_assert_eq!(in_place, copied);
        }
    }

    #[test]
    fn decodes_text_and_ids() {
        assert_eq!(decode(r#"{"id":"a","text":"hi \u00e9"}"#), Ok(("a".into(), "hi é".into())));
        assert_eq!(decode(r#"{"text":"x"}"#), Ok(("f.jsonl:7".into(), "x".into())));
        assert_eq!(decode(r#"{"id":null,"text":"x"}"#), Ok(("f.jsonl:7".into(), "x".into())));
        assert_eq!(decode(r#"{"id":12,"text":"x"}"#), Ok(("12".into(), "x".into())));
    }

    #[test]
    fn bad_records_say_why() {
        assert!(decode(r#"{"text": "x""#).unwrap_err().starts_with("malformed JSON"));
        assert!(decode(r#"[1, 2]"#).unwrap_err().starts_with("not a JSON object"));
        assert!(decode(r#""text""#).unwrap_err().starts_with("not a JSON object"));
        assert_eq!(decode(r#"{"id":"a"}"#).unwrap_err(), "missing field \"text\"");
        assert_eq!(decode(r#"{"text":null}"#).unwrap_err(), "field \"text\" is null, expected a string");
        assert_eq!(decode(r#"{"text":3}"#).unwrap_err(), "field \"text\" is a number, expected a string");
        assert!(decode(r#"{"text":"\ud800"}"#).is_err());
        assert!(decode(r#"{"text":"x"} trailing"#).unwrap_err().starts_with("malformed JSON"));
    }

    proptest::proptest! {
        /// Lines decode to the same columns, bad-record reasons and seen fields whether the
        /// scanner or serde_json parses them.
        #[test]
        fn the_scanner_decodes_as_serde_does(
            lines in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        proptest::sample::select(vec!["\"text\"", "\"id\"", "\"x\"", "\"y\"", "\"t\\u0065xt\""]),
                        proptest::sample::select(vec![
                            "\"a\"", "\"b\\nc\"", "\"\\ud800\"", "\"\\u00e9\\t\"", "12", "-0.5e3", "null", "true",
                            "[1]", "{\"k\": 2}", "\"\u{1}\"", "01", "\"\\q\"",
                        ]),
                    ),
                    0..5,
                ),
                1..6,
            ),
        ) {
            let extras = Extras {
                fields: vec![arrow::datatypes::Field::new("x", DataType::Utf8, true)],
            };
            let schema = source_schema(&ReadOptions::default(), &extras);
            let mut both = Vec::new();
            for scanner in [true, false] {
                let mut d = JsonlDecoder::new("text", "id", "f.jsonl", &extras);
                d.scanner = scanner;
                let mut seen = IndexSet::new();
                let mut reasons = Vec::new();
                for (n, fields) in lines.iter().enumerate() {
                    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    let line = format!("{{{}}}", body.join(", "));
                    reasons.push(d.decode_line(line.as_bytes(), n as u64, &mut seen).err());
                }
                let batch = d.flush(&schema).unwrap();
                both.push((format!("{batch:?}"), reasons, seen));
            }
            proptest::prop_assert_eq!(&both[0], &both[1]);
        }
    }

    #[test]
    fn a_line_over_the_limit_is_cut_and_flagged() {
        let data = b"abc\n0123456789\nxy";
        let mut r = std::io::Cursor::new(&data[..]);
        let mut buf = Vec::new();
        let l = read_line_bounded(&mut r, &mut buf, 5).unwrap();
        assert_eq!((l.bytes, l.over_limit, buf.as_slice()), (4, false, &b"abc\n"[..]));
        buf.clear();
        let l = read_line_bounded(&mut r, &mut buf, 5).unwrap();
        assert_eq!((l.bytes, l.over_limit, buf.as_slice()), (11, true, &b"01234"[..]));
        buf.clear();
        let l = read_line_bounded(&mut r, &mut buf, 5).unwrap();
        assert_eq!((l.bytes, l.over_limit, buf.as_slice()), (2, false, &b"xy"[..]));
        buf.clear();
        assert_eq!(read_line_bounded(&mut r, &mut buf, 5).unwrap().bytes, 0);
    }

    #[test]
    fn invalid_utf8_is_a_bad_record() {
        let mut d = JsonlDecoder::new("text", "id", "f", &Extras::none());
        let err = d.decode_line(b"{\"text\":\"a\xff\"}", 1, &mut IndexSet::new()).unwrap_err();
        assert_eq!(err, "invalid UTF-8 at byte 10 of the line");
        assert_eq!(d.rows(), 0);
    }
}
