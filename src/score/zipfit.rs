//! ZIP-FIT: compression alignment with a target set (Obbad et al. 2024).
//!
//! `C(s)` is the length of the compressed UTF-8 bytes of `s`;
//! `NCD(x, t) = (C(x ++ t) - min(C(x), C(t))) / max(C(x), C(t))` with plain concatenation,
//! source first; `score(x) = mean over the target examples t of (1 - NCD(x, t))`.
//!
//! Compressors, with the reference's (zip-fit 1.0.9) lengths:
//! - `gzip` at a level: exactly `len(gzip.compress(data, compresslevel=L))` of CPython: a
//!   10-byte header, a raw deflate stream (the system zlib, window 15, memLevel 8, default
//!   strategy: what CPython's `zlib` module uses) and an 8-byte trailer. The default here is
//!   level 6. The reference's own default, level 0, stores the data uncompressed, which makes
//!   the score a function of the lengths alone; pass `--level 0` to get it anyway.
//! - `zstd` at a level: exactly `len(zstandard.ZstdCompressor(level=L).compress(data))`
//!   (a frame with the content size, no checksum; libzstd 1.5.7 on both sides).
//!
//! Cost is N x M compressions of `x ++ t`. Each target's `C(t)` is computed once. For gzip at
//! levels 4-9 (the default 6 included) and pairs shorter than one deflate block
//! (`deflate_len::MAX_INPUT`, 16 KB), the length of zlib's stream is computed without making
//! the stream ([`super::deflate_len`]: zlib's parse and Huffman trees, no bit output; each
//! candidate parsed once, each target continued from it), and equals zlib's byte for byte.
//! Otherwise each candidate is deflated once by zlib and its state copied (`deflateCopy`) for
//! every target, with zlib's buffers from a per-thread pool; the output is the same stream a
//! one-shot compression of `x ++ t` makes (deflate's output does not depend on how its input is
//! split), so the numbers are the reference's either way. For zstd, contexts are reused.
//!
//! Fast mode (`fast = true`, opt-in, not reference-compatible): the candidate is loaded once
//! as a dictionary and every target compressed against it; `C(x ++ t)` is taken as
//! `C(x) + C(t | x)`. With lz4 (the default: `LZ4_loadDict` once, `LZ4_attach_dictionary` per
//! target, blocks without an entropy stage) or zstd (level -1, a `CDict` per candidate). It
//! ranks about as the exact score does at a fraction of the cost (see `benches/README.md`).
//!
//! Memory: the target texts and their sizes (O(M)), per-thread compressor state, and the
//! batch being scored; never O(N x M) (the reference builds all N x M pairs in memory).
//! Scores are computed per row, independently, so they do not depend on the thread count.

use std::cell::RefCell;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::{DataType, Field};
use rayon::prelude::*;

use super::Scorer;
use crate::batch::{text_column, RecordBatch, COL_ZIPFIT};
use crate::error::{Error, Result};

/// The compressor behind `C(s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ZipCompressor {
    /// CPython's `gzip.compress` (system zlib).
    #[default]
    Gzip,
    /// python-zstandard's `ZstdCompressor.compress` (libzstd).
    Zstd,
    /// lz4 blocks (fast mode only): no entropy stage, the cheapest C(t | x).
    Lz4,
}

/// ZIP-FIT settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZipfitParams {
    pub compressor: ZipCompressor,
    /// Compression level (gzip 0..=9, zstd -7..=22).
    pub level: i32,
    /// zstd with the candidate as a dictionary: faster, approximate.
    pub fast: bool,
}

impl Default for ZipfitParams {
    fn default() -> Self {
        ZipfitParams { compressor: ZipCompressor::Gzip, level: 6, fast: false }
    }
}

impl ZipfitParams {
    /// Settings from optional choices: the compressor defaults to gzip (lz4 in fast mode),
    /// the level to the compressor's default.
    pub fn with(compressor: Option<ZipCompressor>, level: Option<i32>, fast: bool) -> Self {
        let compressor = compressor.unwrap_or(if fast { ZipCompressor::Lz4 } else { ZipCompressor::Gzip });
        ZipfitParams { compressor, level: level.unwrap_or(Self::default_level(compressor, fast)), fast }
    }

    /// The default level of a compressor (gzip 6, zstd 3; fast mode -1: zstd's fastest
    /// strategy with raw literals, which ranked the fixture lake as well as gzip 6 did).
    pub fn default_level(compressor: ZipCompressor, fast: bool) -> i32 {
        match (compressor, fast) {
            (ZipCompressor::Lz4, _) => 1,
            (_, true) => -1,
            (ZipCompressor::Gzip, false) => 6,
            (ZipCompressor::Zstd, false) => 3,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.fast && self.compressor == ZipCompressor::Gzip {
            return Err(Error::InvalidArgument(
                "fast mode uses zstd or lz4: pass --compressor zstd (or lz4) with --fast".into(),
            ));
        }
        if !self.fast && self.compressor == ZipCompressor::Lz4 {
            return Err(Error::InvalidArgument(
                "lz4 is a fast-mode compressor: pass --fast with --compressor lz4".into(),
            ));
        }
        let ok = match self.compressor {
            ZipCompressor::Gzip => (0..=9).contains(&self.level),
            ZipCompressor::Zstd => (-7..=22).contains(&self.level),
            // lz4's acceleration factor.
            ZipCompressor::Lz4 => (1..=65537).contains(&self.level),
        };
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "level {} is out of range for {:?}",
                self.level, self.compressor
            )));
        }
        Ok(())
    }
}

/// CPython's gzip header and trailer around the raw deflate stream.
const GZIP_OVERHEAD: u64 = 18;

/// A raw deflate stream (window 15, memLevel 8) of the system zlib that counts its output.
mod zlib {
    use std::os::raw::{c_int, c_uint};

    use libz_sys as z;

    /// zlib's buffers, kept for reuse by the thread that freed them.
    ///
    /// Every pair copies the candidate's stream (`deflateCopy`), which frees the copy's old
    /// buffers and allocates new ones: five blocks, about 260 KB at memLevel 8. glibc serves
    /// blocks of that size from fresh mappings and unmaps them on free (the binary's own
    /// allocations go to mimalloc, so glibc's heap never grows past its mmap threshold), so
    /// each pair faulted in a quarter of a megabyte of new pages. Kept here, the same blocks
    /// serve every pair: the copy is a memcpy within the cache.
    ///
    /// Each block has a 16-byte header (its size; the alignment malloc gives is kept) so a
    /// freed block can be filed by size. At most [`KEEP`] free blocks are kept per thread.
    mod pool {
        use std::cell::RefCell;
        use std::os::raw::{c_uint, c_void};

        const HEADER: usize = 16;
        const KEEP: usize = 32;

        struct Free(Vec<(usize, *mut u8)>);

        impl Drop for Free {
            fn drop(&mut self) {
                for (_, base) in self.0.drain(..) {
                    // SAFETY: every kept block came from libc::malloc in `zalloc`.
                    unsafe { libc::free(base.cast()) };
                }
            }
        }

        thread_local! {
            static FREE: RefCell<Free> = const { RefCell::new(Free(Vec::new())) };
            /// Blocks this thread took from malloc (not from the pool).
            static FRESH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }

        /// Blocks this thread took from malloc so far, and free blocks it keeps now.
        #[cfg(test)]
        pub fn counts() -> (u64, usize) {
            (FRESH.with(|c| c.get()), FREE.with(|f| f.borrow().0.len()))
        }

        pub unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
            // Not zeroed: zlib initialises what it reads, and deflateCopy overwrites every
            // buffer it allocates. Overflow or no memory gives NULL, which zlib checks.
            let Some(n) = (items as usize).checked_mul(size as usize) else { return std::ptr::null_mut() };
            let reused = FREE
                .try_with(|f| {
                    let mut f = f.borrow_mut();
                    f.0.iter().position(|&(len, _)| len == n).map(|i| f.0.swap_remove(i).1)
                })
                .ok()
                .flatten();
            let base = match reused {
                Some(b) => b,
                None => {
                    let Some(total) = n.checked_add(HEADER) else { return std::ptr::null_mut() };
                    // SAFETY: plain C allocation of a checked size.
                    let b = unsafe { libc::malloc(total) }.cast::<u8>();
                    if b.is_null() {
                        return std::ptr::null_mut();
                    }
                    let _ = FRESH.try_with(|c| c.set(c.get() + 1));
                    b
                }
            };
            // SAFETY: `base` holds at least HEADER + n bytes and is aligned for usize.
            unsafe {
                base.cast::<usize>().write(n);
                base.add(HEADER).cast()
            }
        }

        pub unsafe extern "C" fn zfree(_opaque: *mut c_void, ptr: *mut c_void) {
            if ptr.is_null() {
                return;
            }
            // SAFETY: `ptr` came from `zalloc`: its block starts HEADER bytes before it, with
            // the size in front.
            let (base, n) = unsafe {
                let base = ptr.cast::<u8>().sub(HEADER);
                (base, base.cast::<usize>().read())
            };
            let kept = FREE
                .try_with(|f| {
                    let mut f = f.borrow_mut();
                    let keep = f.0.len() < KEEP;
                    if keep {
                        f.0.push((n, base));
                    }
                    keep
                })
                .unwrap_or(false);
            if !kept {
                // SAFETY: the block came from libc::malloc.
                unsafe { libc::free(base.cast()) };
            }
        }
    }
    #[cfg(test)]
    pub use pool::counts as pool_counts;
    use pool::{zalloc, zfree};

    fn new_stream() -> Box<z::z_stream> {
        Box::new(z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc,
            zfree,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        })
    }

    /// Owns an initialised deflate stream. Boxed: zlib keeps a pointer back to it.
    pub struct Deflater {
        strm: Box<z::z_stream>,
        level: i32,
        /// Where output goes; only its length matters.
        scratch: Vec<u8>,
    }

    // SAFETY: the stream is only used through &mut self; zlib state has no thread affinity.
    unsafe impl Send for Deflater {}

    const SCRATCH: usize = 64 << 10;

    impl Deflater {
        pub fn new(level: i32) -> Result<Self, String> {
            let mut strm = new_stream();
            // SAFETY: `strm` is a valid, boxed z_stream with allocators set; the version and
            // struct size are the ones this crate was compiled against.
            let rc = unsafe {
                z::deflateInit2_(
                    strm.as_mut(),
                    level as c_int,
                    z::Z_DEFLATED,
                    -15,
                    8,
                    z::Z_DEFAULT_STRATEGY,
                    z::zlibVersion(),
                    std::mem::size_of::<z::z_stream>() as c_int,
                )
            };
            if rc != z::Z_OK {
                return Err(format!("deflateInit2 failed ({rc})"));
            }
            Ok(Deflater { strm, level, scratch: vec![0; SCRATCH] })
        }

        /// Start a new stream with the same settings.
        pub fn reset(&mut self) {
            // SAFETY: the stream was initialised by `new` or `copy_from`.
            unsafe { z::deflateReset(self.strm.as_mut()) };
        }

        /// Make this stream a copy of `src` (state, pending output and all).
        pub fn copy_from(&mut self, src: &mut Deflater) -> Result<(), String> {
            // SAFETY: both streams are initialised; deflateEnd frees ours before deflateCopy
            // overwrites the struct and allocates a new state pointing back at our box.
            let rc = unsafe {
                z::deflateEnd(self.strm.as_mut());
                z::deflateCopy(self.strm.as_mut(), src.strm.as_mut())
            };
            if rc != z::Z_OK {
                // On failure our struct may still point at `src`'s state: forget it (so Drop
                // cannot free it twice) and leave a fresh stream behind.
                self.strm.state = std::ptr::null_mut();
                *self = Deflater::new(self.level)?;
                return Err(format!("deflateCopy failed ({rc})"));
            }
            Ok(())
        }

        /// Compress `data`, ending the stream when `finish`; returns the bytes produced.
        pub fn feed(&mut self, data: &[u8], finish: bool) -> Result<u64, String> {
            let scratch = &mut self.scratch;
            let mut produced = 0u64;
            let mut rest = data;
            loop {
                let take = rest.len().min(c_uint::MAX as usize);
                let last = take == rest.len();
                self.strm.next_in = rest.as_ptr() as *mut u8;
                self.strm.avail_in = take as c_uint;
                let flush = if finish && last { z::Z_FINISH } else { z::Z_NO_FLUSH };
                loop {
                    self.strm.next_out = scratch.as_mut_ptr();
                    self.strm.avail_out = SCRATCH as c_uint;
                    // SAFETY: next_in/avail_in describe `rest`, next_out/avail_out `scratch`,
                    // both alive for this call; the stream is initialised.
                    let rc = unsafe { z::deflate(self.strm.as_mut(), flush) };
                    produced += (SCRATCH - self.strm.avail_out as usize) as u64;
                    match rc {
                        z::Z_STREAM_END => break,
                        z::Z_OK | z::Z_BUF_ERROR => {
                            if flush == z::Z_NO_FLUSH && self.strm.avail_in == 0 && self.strm.avail_out != 0 {
                                break;
                            }
                        }
                        rc => return Err(format!("deflate failed ({rc})")),
                    }
                }
                self.strm.next_in = std::ptr::null_mut();
                self.strm.avail_in = 0;
                rest = &rest[take..];
                if last {
                    return Ok(produced);
                }
            }
        }
    }

    impl Drop for Deflater {
        fn drop(&mut self) {
            // SAFETY: the stream is initialised (see `new` and `copy_from`).
            unsafe { z::deflateEnd(self.strm.as_mut()) };
        }
    }
}

/// lz4 blocks with a dictionary attached: the candidate is hashed once (`LZ4_loadDict`) and
/// every target compressed against it (`LZ4_attach_dictionary`, stable since lz4 1.10).
mod lz4 {
    use std::os::raw::{c_char, c_int, c_void};

    // The functions below are lz4 1.10's, from the static library lz4-sys builds; this keeps
    // that library linked (lz4-sys itself does not bind the dictionary API).
    use lz4_sys as _;

    extern "C" {
        fn LZ4_createStream() -> *mut c_void;
        fn LZ4_freeStream(stream: *mut c_void) -> c_int;
        fn LZ4_loadDict(stream: *mut c_void, dictionary: *const c_char, dict_size: c_int) -> c_int;
        fn LZ4_resetStream_fast(stream: *mut c_void);
        fn LZ4_attach_dictionary(working: *mut c_void, dictionary: *const c_void);
        fn LZ4_compress_fast_continue(
            stream: *mut c_void,
            src: *const c_char,
            dst: *mut c_char,
            src_size: c_int,
            dst_capacity: c_int,
            acceleration: c_int,
        ) -> c_int;
        fn LZ4_compressBound(input_size: c_int) -> c_int;
        fn LZ4_compress_fast(
            src: *const c_char,
            dst: *mut c_char,
            src_size: c_int,
            dst_capacity: c_int,
            acceleration: c_int,
        ) -> c_int;
    }

    /// Two lz4 streams: one holds the candidate as a dictionary, one compresses targets.
    pub struct Lz4 {
        dict: *mut c_void,
        work: *mut c_void,
        /// The candidate: lz4 reads the dictionary from this memory while compressing.
        prefix: Vec<u8>,
        out: Vec<u8>,
    }

    // SAFETY: the streams are owned and only used through &mut self.
    unsafe impl Send for Lz4 {}

    impl Lz4 {
        pub fn new() -> Result<Self, String> {
            // SAFETY: plain constructors; NULL is checked.
            let (dict, work) = unsafe { (LZ4_createStream(), LZ4_createStream()) };
            if dict.is_null() || work.is_null() {
                return Err("LZ4_createStream failed".into());
            }
            Ok(Lz4 { dict, work, prefix: Vec::new(), out: Vec::new() })
        }

        fn size_limit(len: usize) -> Result<c_int, String> {
            c_int::try_from(len).ok().filter(|&n| n <= 0x7E00_0000).ok_or_else(|| "text too large for lz4".to_string())
        }

        /// Load `x` as the dictionary for the following `compress` calls.
        pub fn load(&mut self, x: &[u8]) -> Result<(), String> {
            let n = Self::size_limit(x.len())?;
            self.prefix.clear();
            self.prefix.extend_from_slice(x);
            // SAFETY: `prefix` outlives every use of the dictionary (it is only changed here,
            // by the next load, which re-initialises the stream).
            unsafe { LZ4_loadDict(self.dict, self.prefix.as_ptr() as *const c_char, n) };
            // A fresh working stream per candidate: `LZ4_resetStream_fast` keeps the stream's
            // offsets and table across calls, and the sizes it gives then depend (slightly) on
            // what this thread compressed before, so on the batching and the thread count.
            // SAFETY: `work` came from LZ4_createStream and is not used elsewhere.
            let fresh = unsafe {
                LZ4_freeStream(self.work);
                LZ4_createStream()
            };
            if fresh.is_null() {
                return Err("LZ4_createStream failed".into());
            }
            self.work = fresh;
            Ok(())
        }

        /// Compressed size of `t` alone (no dictionary) when `attach` is false, else of `t`
        /// given the loaded dictionary.
        pub fn compress(&mut self, t: &[u8], attach: bool, acceleration: i32) -> Result<u64, String> {
            let n = Self::size_limit(t.len())?;
            // SAFETY: LZ4_compressBound is a pure function.
            let cap = unsafe { LZ4_compressBound(n) }.max(16);
            self.out.resize(cap as usize, 0);
            // SAFETY: `work` is a valid stream; the dictionary stream and `prefix` are alive;
            // src/dst describe live buffers of the given sizes.
            let (src, dst) = (t.as_ptr() as *const c_char, self.out.as_mut_ptr() as *mut c_char);
            let written = unsafe {
                if attach {
                    LZ4_resetStream_fast(self.work);
                    LZ4_attach_dictionary(self.work, self.dict as *const c_void);
                    LZ4_compress_fast_continue(self.work, src, dst, n, cap, acceleration)
                } else {
                    // A one-shot compression (its own, freshly initialised state): the size
                    // does not depend on what the thread compressed before.
                    LZ4_compress_fast(src, dst, n, cap, acceleration)
                }
            };
            if written <= 0 && !t.is_empty() {
                return Err(format!("LZ4_compress_fast_continue failed ({written})"));
            }
            Ok(written.max(0) as u64)
        }
    }

    impl Drop for Lz4 {
        fn drop(&mut self) {
            // SAFETY: both streams came from LZ4_createStream.
            unsafe {
                LZ4_freeStream(self.dict);
                LZ4_freeStream(self.work);
            }
        }
    }
}

/// The raw deflate length of `data` by the system zlib (window 15, memLevel 8).
#[cfg(test)]
pub(crate) fn zlib_raw_len(level: i32, data: &[u8]) -> u64 {
    zlib::Deflater::new(level).unwrap().feed(data, true).unwrap()
}

/// Per-thread compressor state for one parameter set.
struct Compressors {
    params: ZipfitParams,
    /// gzip: the candidate's stream, and the copy each target continues.
    prefix: Option<zlib::Deflater>,
    pair: Option<zlib::Deflater>,
    /// gzip at levels 4-9 on short texts: zlib's lengths without zlib's streams.
    lengths: super::deflate_len::Prefix,
    /// zstd (exact mode): a reused context and buffers.
    zstd: Option<zstd::bulk::Compressor<'static>>,
    lz4: Option<lz4::Lz4>,
    concat: Vec<u8>,
    out: Vec<u8>,
}

impl Compressors {
    fn new(params: &ZipfitParams) -> Result<Self> {
        let zerr = |e: String| Error::InvalidArgument(format!("zlib: {e}"));
        let (mut prefix, mut pair, mut zstd, mut lz4) = (None, None, None, None);
        match params.compressor {
            ZipCompressor::Gzip => {
                prefix = Some(zlib::Deflater::new(params.level).map_err(zerr)?);
                pair = Some(zlib::Deflater::new(params.level).map_err(zerr)?);
            }
            ZipCompressor::Zstd => {
                zstd = Some(
                    zstd::bulk::Compressor::new(params.level)
                        .map_err(|e| Error::InvalidArgument(format!("zstd: {e}")))?,
                )
            }
            ZipCompressor::Lz4 => lz4 = Some(lz4::Lz4::new().map_err(|e| Error::InvalidArgument(format!("lz4: {e}")))?),
        }
        Ok(Compressors {
            params: params.clone(),
            prefix,
            pair,
            lengths: Default::default(),
            zstd,
            lz4,
            concat: Vec::new(),
            out: Vec::new(),
        })
    }

    fn zstd_len(zstd: &mut zstd::bulk::Compressor<'static>, out: &mut Vec<u8>, data: &[u8]) -> Result<u64> {
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        zstd.compress_to_buffer(data, out).map(|n| n as u64).map_err(|e| Error::InvalidArgument(format!("zstd: {e}")))
    }

    /// `C(s)`.
    fn size(&mut self, s: &[u8]) -> Result<u64> {
        let zerr = |e: String| Error::InvalidArgument(format!("zlib: {e}"));
        match self.params.compressor {
            ZipCompressor::Gzip => {
                let d = self.prefix.as_mut().expect("gzip compressor");
                d.reset();
                Ok(GZIP_OVERHEAD + d.feed(s, true).map_err(zerr)?)
            }
            ZipCompressor::Zstd => Self::zstd_len(self.zstd.as_mut().expect("zstd compressor"), &mut self.out, s),
            ZipCompressor::Lz4 => {
                let level = self.params.level;
                self.lz4
                    .as_mut()
                    .expect("lz4 compressor")
                    .compress(s, false, level)
                    .map_err(|e| Error::InvalidArgument(format!("lz4: {e}")))
            }
        }
    }

    /// `C(x)` and `C(x ++ t)` for every target `t`, calling `f(j, c_xt)` in target order.
    fn pairs(&mut self, x: &[u8], targets: &[Box<[u8]>], mut f: impl FnMut(usize, u64)) -> Result<u64> {
        let zerr = |e: String| Error::InvalidArgument(format!("zlib: {e}"));
        let zstd_err = |e: std::io::Error| Error::InvalidArgument(format!("zstd: {e}"));
        match (self.params.compressor, self.params.fast) {
            (ZipCompressor::Gzip, _) => {
                let prefix = self.prefix.as_mut().expect("gzip compressor");
                let pair = self.pair.as_mut().expect("gzip compressor");
                // zlib's stream for the candidate, made only if a pair needs it.
                let mut head: Option<u64> = None;
                let mut by_zlib = |t: &[u8]| -> Result<u64> {
                    let h = match head {
                        Some(h) => h,
                        None => {
                            prefix.reset();
                            let h = prefix.feed(x, false).map_err(zerr)?;
                            head = Some(h);
                            h
                        }
                    };
                    pair.copy_from(prefix).map_err(zerr)?;
                    Ok(GZIP_OVERHEAD + h + pair.feed(t, true).map_err(zerr)?)
                };
                // Levels 4-9 and pairs short enough for one block: the length of zlib's stream
                // computed without making it (deflate_len), else zlib's stream itself.
                let lengths = &mut self.lengths;
                let measured = lengths.load(self.params.level, x);
                let mut c = |t: &[u8]| -> Result<u64> {
                    match measured.then(|| lengths.len_with(t)).flatten() {
                        Some(n) => Ok(GZIP_OVERHEAD + n),
                        None => by_zlib(t),
                    }
                };
                let c_x = c(&[])?;
                for (j, t) in targets.iter().enumerate() {
                    f(j, c(t)?);
                }
                Ok(c_x)
            }
            (ZipCompressor::Zstd, false) => {
                let zstd = self.zstd.as_mut().expect("zstd compressor");
                let c_x = Self::zstd_len(zstd, &mut self.out, x)?;
                for (j, t) in targets.iter().enumerate() {
                    self.concat.clear();
                    self.concat.extend_from_slice(x);
                    self.concat.extend_from_slice(t);
                    f(j, Self::zstd_len(zstd, &mut self.out, &self.concat)?);
                }
                Ok(c_x)
            }
            (ZipCompressor::Lz4, _) => {
                let level = self.params.level;
                let lz = self.lz4.as_mut().expect("lz4 compressor");
                let lerr = |e: String| Error::InvalidArgument(format!("lz4: {e}"));
                let c_x = lz.compress(x, false, level).map_err(lerr)?;
                lz.load(x).map_err(lerr)?;
                for (j, t) in targets.iter().enumerate() {
                    f(j, c_x + lz.compress(t, true, level).map_err(lerr)?);
                }
                Ok(c_x)
            }
            (ZipCompressor::Zstd, true) => {
                let zstd = self.zstd.as_mut().expect("zstd compressor");
                let c_x = Self::zstd_len(zstd, &mut self.out, x)?;
                let dict = zstd::dict::EncoderDictionary::copy(x, self.params.level);
                let mut c = zstd::bulk::Compressor::with_prepared_dictionary(&dict).map_err(zstd_err)?;
                for (j, t) in targets.iter().enumerate() {
                    self.out.clear();
                    self.out.reserve(zstd::zstd_safe::compress_bound(t.len()));
                    let n = c.compress_to_buffer(&t[..], &mut self.out).map_err(zstd_err)? as u64;
                    f(j, c_x + n);
                }
                Ok(c_x)
            }
        }
    }
}

thread_local! {
    static COMPRESSORS: RefCell<Option<Compressors>> = const { RefCell::new(None) };
}

fn with_compressors<R>(params: &ZipfitParams, f: impl FnOnce(&mut Compressors) -> Result<R>) -> Result<R> {
    COMPRESSORS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !slot.as_ref().is_some_and(|c| c.params == *params) {
            *slot = Some(Compressors::new(params)?);
        }
        f(slot.as_mut().expect("compressors were just set"))
    })
}

/// `NCD` from the three sizes; 0 when both inputs compress to nothing.
pub fn ncd(c_x: u64, c_t: u64, c_xt: u64) -> f64 {
    let (lo, hi) = (c_x.min(c_t) as f64, c_x.max(c_t) as f64);
    if hi == 0.0 {
        return 0.0;
    }
    (c_xt as f64 - lo) / hi
}

/// NCD(a, b) = (C(a ++ b) − min(C(a), C(b))) / max(C(a), C(b)) with the compressor of `params`
/// (exact modes only; gzip 6 by default).
pub fn ncd_texts(params: &ZipfitParams, a: &str, b: &str) -> Result<f64> {
    with_compressors(params, |c| {
        let ca = c.size(a.as_bytes())?;
        let cb = c.size(b.as_bytes())?;
        c.concat.clear();
        c.concat.extend_from_slice(a.as_bytes());
        c.concat.extend_from_slice(b.as_bytes());
        let ab = std::mem::take(&mut c.concat);
        let cab = c.size(&ab);
        c.concat = ab;
        Ok(ncd(ca, cb, cab?))
    })
}

/// A target set, compressed once.
pub struct ZipfitTarget {
    params: ZipfitParams,
    texts: Vec<Box<[u8]>>,
    sizes: Vec<u64>,
}

impl ZipfitTarget {
    pub fn try_new(params: ZipfitParams, texts: Vec<String>) -> Result<Self> {
        params.validate()?;
        if texts.is_empty() {
            return Err(Error::InvalidArgument("the ZIP-FIT target set is empty".into()));
        }
        let texts: Vec<Box<[u8]>> = texts.into_iter().map(|t| t.into_bytes().into_boxed_slice()).collect();
        let sizes = texts.par_iter().map(|t| with_compressors(&params, |c| c.size(t))).collect::<Result<_>>()?;
        Ok(ZipfitTarget { params, texts, sizes })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn params(&self) -> &ZipfitParams {
        &self.params
    }

    /// The target texts, in order (what a cluster ships to its executors).
    pub fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.texts.iter().map(|t| &t[..])
    }

    /// `score(x)`: the mean over the targets of `1 - NCD(x, t)`, summed in target order.
    pub fn score_text(&self, x: &str) -> Result<f64> {
        let mut sum = 0.0;
        let mut c_xts = vec![0u64; self.texts.len()];
        let c_x = with_compressors(&self.params, |c| c.pairs(x.as_bytes(), &self.texts, |j, n| c_xts[j] = n))?;
        for (c_xt, &c_t) in c_xts.iter().zip(&self.sizes) {
            sum += 1.0 - ncd(c_x, c_t, *c_xt);
        }
        Ok(sum / self.texts.len() as f64)
    }
}

/// [`Scorer`] adding `zipfit`. Rows of a batch are scored in parallel.
pub struct ZipfitScorer {
    target: Arc<ZipfitTarget>,
}

impl ZipfitScorer {
    pub fn new(target: Arc<ZipfitTarget>) -> Self {
        ZipfitScorer { target }
    }
}

impl ZipfitScorer {
    pub fn target(&self) -> &Arc<ZipfitTarget> {
        &self.target
    }
}

/// A ZIP-FIT scorer's state: the settings and the target texts.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ZipfitState {
    pub params: ZipfitParams,
    pub texts: Vec<String>,
}

impl Scorer for ZipfitScorer {
    fn name(&self) -> &'static str {
        "zipfit"
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![Field::new(COL_ZIPFIT, DataType::Float64, false)]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let text = text_column(batch)?;
        let scores = (0..text.len())
            .into_par_iter()
            .map(|i| self.target.score_text(if text.is_valid(i) { text.value(i) } else { "" }))
            .collect::<Result<Vec<f64>>>()?;
        Ok(vec![Arc::new(Float64Array::from(scores))])
    }

    fn state(&self) -> Result<Vec<u8>> {
        let texts = self.target.texts().map(|t| String::from_utf8_lossy(t).into_owned()).collect();
        serde_json::to_vec(&ZipfitState { params: self.target.params().clone(), texts })
            .map_err(|e| Error::InvalidArgument(format!("encoding a ZIP-FIT target: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(level: i32) -> ZipfitParams {
        ZipfitParams { compressor: ZipCompressor::Gzip, level, fast: false }
    }

    fn flate2_gzip_len(data: &[u8], level: u32) -> u64 {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        GZIP_OVERHEAD + e.finish().unwrap().len() as u64
    }

    fn text(seed: u64, n: usize) -> String {
        let words = ["lemma", "proof", "the", "of", "REAL_ARITH_TAC", "x", "=", "sum", "prove", "(`!n.", "<=", "0"];
        let mut s = String::new();
        let mut r = seed;
        for _ in 0..n {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s.push_str(words[(r >> 33) as usize % words.len()]);
            s.push(' ');
        }
        s
    }

    #[test]
    fn state_copy_equals_one_shot_compression() {
        // C(x ++ t) from a copied prefix state equals compressing the concatenation.
        for level in [0, 1, 6, 9] {
            let p = gzip(level);
            let x = text(1, 700);
            let targets: Vec<Box<[u8]>> =
                (2..6).map(|s| text(s, 50 * s as usize).into_bytes().into_boxed_slice()).collect();
            let mut got = vec![0; targets.len()];
            let c_x = with_compressors(&p, |c| c.pairs(x.as_bytes(), &targets, |j, n| got[j] = n)).unwrap();
            assert_eq!(c_x, with_compressors(&p, |c| c.size(x.as_bytes())).unwrap());
            for (j, t) in targets.iter().enumerate() {
                let mut cat = x.as_bytes().to_vec();
                cat.extend_from_slice(t);
                assert_eq!(got[j], with_compressors(&p, |c| c.size(&cat)).unwrap(), "level {level} target {j}");
            }
        }
    }

    #[test]
    fn zlib_buffers_are_reused_across_pairs_and_candidates() {
        // Each pair copies the candidate's stream: after the first candidate, the copies take
        // their buffers from the thread's pool, never from malloc (issue #26: every copy
        // faulted in fresh pages), and the pool stays bounded.
        std::thread::spawn(|| {
            // Level 1: zlib's own streams (levels 4-9 of short texts go through deflate_len).
            let p = gzip(1);
            let targets: Vec<Box<[u8]>> =
                (2..12).map(|s| text(s, 80 * s as usize).into_bytes().into_boxed_slice()).collect();
            with_compressors(&p, |c| c.pairs(text(1, 700).as_bytes(), &targets, |_, _| ())).unwrap();
            // Two streams of five blocks each, and the copy's: a handful, not one set per pair.
            let (fresh, kept) = zlib::pool_counts();
            assert!(fresh <= 16 && kept <= 32, "{fresh} blocks from malloc, {kept} kept");
            for seed in 20..25 {
                with_compressors(&p, |c| c.pairs(text(seed, 900).as_bytes(), &targets, |_, _| ())).unwrap();
            }
            assert_eq!(zlib::pool_counts().0, fresh, "later candidates allocated new zlib buffers");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn gzip_sizes_are_deflate_plus_header_and_trailer() {
        // Level 0 stores: 5 bytes of block header per stored block.
        let data = vec![b'a'; 1000];
        assert_eq!(with_compressors(&gzip(0), |c| c.size(&data)).unwrap(), GZIP_OVERHEAD + 1000 + 5);
        // Empty input: the raw deflate stream of nothing is 2 bytes (CPython: len(gzip.compress(b"")) == 20).
        assert_eq!(with_compressors(&gzip(6), |c| c.size(b"")).unwrap(), 20);
        // A different deflate implementation gives a close, not necessarily equal, size.
        let s = text(9, 400);
        let ours = with_compressors(&gzip(6), |c| c.size(s.as_bytes())).unwrap();
        assert!(ours.abs_diff(flate2_gzip_len(s.as_bytes(), 6)) < 40);
    }

    #[test]
    fn oracles() {
        for p in [
            gzip(6),
            ZipfitParams { compressor: ZipCompressor::Zstd, level: 3, fast: false },
            ZipfitParams::with(None, None, true),
            ZipfitParams::with(Some(ZipCompressor::Zstd), None, true),
        ] {
            // NCD(x, x) is near 0, so the score of a document against itself is near 1.
            let x = text(3, 500);
            let target = ZipfitTarget::try_new(p.clone(), vec![x.clone()]).unwrap();
            let s = target.score_text(&x).unwrap();
            assert!(s > 0.9, "{p:?}: {s}");
            // Two unrelated random byte strings score near 0.
            let rand = |seed: u64| -> String {
                let mut r = seed;
                (0..3000)
                    .map(|_| {
                        r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
                        char::from(b'!' + ((r >> 33) % 90) as u8)
                    })
                    .collect()
            };
            let target = ZipfitTarget::try_new(p.clone(), vec![rand(1)]).unwrap();
            let s = target.score_text(&rand(2)).unwrap();
            assert!(s.abs() < 0.1, "{p:?}: {s}");
            // Empty strings do not divide by zero.
            let target = ZipfitTarget::try_new(p.clone(), vec![String::new()]).unwrap();
            assert!(target.score_text("").unwrap().is_finite());
        }
        assert_eq!(ncd(0, 0, 0), 0.0);
    }

    #[test]
    fn ranking_does_not_depend_on_target_order() {
        let targets: Vec<String> = (10..16).map(|s| text(s, 80)).collect();
        let mut reversed = targets.clone();
        reversed.reverse();
        let a = ZipfitTarget::try_new(gzip(6), targets).unwrap();
        let b = ZipfitTarget::try_new(gzip(6), reversed).unwrap();
        let cands: Vec<String> = (20..30).map(|s| text(s, 60 + s as usize)).collect();
        let sa: Vec<f64> = cands.iter().map(|c| a.score_text(c).unwrap()).collect();
        let sb: Vec<f64> = cands.iter().map(|c| b.score_text(c).unwrap()).collect();
        for (x, y) in sa.iter().zip(&sb) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(ZipfitParams { level: 10, ..gzip(6) }.validate().is_err());
        assert!(ZipfitParams { fast: true, ..gzip(6) }.validate().is_err());
        assert!(ZipfitParams { compressor: ZipCompressor::Lz4, level: 1, fast: false }.validate().is_err());
        assert_eq!(ZipfitParams::with(None, None, true).compressor, ZipCompressor::Lz4);
        assert_eq!(ZipfitParams::with(None, None, false), gzip(6));
        assert!(ZipfitTarget::try_new(gzip(6), Vec::new()).is_err());
    }
}
