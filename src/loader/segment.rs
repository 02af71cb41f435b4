//! The shared-memory segment `serve` stages a curriculum into, and that ranks map.
//!
//! One file under the shared-memory directory (`/dev/shm`, or `$SYLLABUS_SHM_DIR`) named
//! `syllabus-<uid>-<id>`: `<id>` is the first 16 hex digits of sha256 over the manifest's
//! `config_hash` and the checksums of its shards (or a name given to `serve --name`), so two
//! curricula, or two users, never meet on one name. Beside it, `<name>.lock` (held with an
//! exclusive `flock` by the live `serve` for its whole life: a segment whose lock is free was
//! left by a dead one and is replaced) and `<name>.sock` (the report socket). All three are
//! created with the mode given to `serve` (0600 by default).
//!
//! Layout (little-endian; every region 4096-aligned):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SYLSERVE` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | token width in bytes (2 or 4) |
//! | 16 | 8 | `seq_len` |
//! | 24 | 8 | `n_seq`, sequences in the curriculum |
//! | 32 | 8 | number of domains |
//! | 40 | 8 | offset of the tokens, `[n_seq, seq_len]` (0 in map mode: they stay in the shard files) |
//! | 48 | 8 | offset of the per-sequence weights (f32) |
//! | 56 | 8 | offset of the per-sequence domain ids (u16) |
//! | 64 | 8 | offset of the plan (u64 per position; 0 when the order is the curriculum's) |
//! | 72 | 8 | offset of the metadata (JSON) |
//! | 80 | 8 | length of the metadata |
//! | 88 | 8 | pid of `serve` |
//! | 96 | 8 | total size |
//! | 104 | 8 | offset of the chunk table (map mode; 0 when the tokens are in the segment) |
//! | 112 | 8 | rows of the chunk table: one per shard file, `first_seq`, `n_seq`, byte offset of its tokens (u64 each); the files are the metadata's `files` |
//! | 256 | 8 | state: 0 staging, 1 ready, 2 closed (written by `serve`) |
//! | 264 | 8 | positions planned (`n_seq` when there is no plan) |
//! | 272 | 8 | decisions taken |
//!
//! The segment is written under a temporary name and renamed into place when complete, so a
//! rank never sees a half-staged one. Only `serve` writes to it after that, and only the
//! plan, the count of planned positions (after the plan entries, with release ordering) and
//! the decision count.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest;

use crate::error::{Error, Result};
use crate::shard::manifest::{Manifest, ShardEntry};
use crate::shard::{read_listed, HEADER_BYTES as SHARD_HEADER};

pub const MAGIC: &[u8; 8] = b"SYLSERVE";
pub const VERSION: u32 = 1;
const PAGE: u64 = 4096;
pub const OFF_STATE: usize = 256;
pub const OFF_PLANNED: usize = 264;
pub const OFF_DECISIONS: usize = 272;
pub const STATE_READY: u64 = 1;
pub const STATE_CLOSED: u64 = 2;

/// Where segments live: `$SYLLABUS_SHM_DIR`, else `/dev/shm`.
pub fn shm_dir() -> PathBuf {
    std::env::var_os("SYLLABUS_SHM_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

/// The curriculum's identity: sha256 over `config_hash` and the shard checksums.
pub fn curriculum_id(m: &Manifest) -> String {
    let mut h = sha2::Sha256::new();
    h.update(m.config_hash.as_bytes());
    for s in m.shards.iter().filter(|s| s.format == "syllabus") {
        h.update(b"\n");
        h.update(s.checksum.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// The segment name for a curriculum (or for `--name`).
pub fn segment_name(id: &str, custom: Option<&str>) -> Result<String> {
    let uid = unsafe { libc::getuid() };
    match custom {
        Some(n)
            if n.is_empty()
                || n.len() > 64
                || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Err(Error::InvalidArgument(format!("--name {n:?}: use 1 to 64 letters, digits, '-' or '_'")))
        }
        Some(n) => Ok(format!("syllabus-{uid}-{n}")),
        None => Ok(format!("syllabus-{uid}-{}", &id[..16])),
    }
}

fn align(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// A shared read-write mapping of the whole segment.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// The mapping is plain shared memory; the fields `serve` changes after publishing are written
// through atomics, and the plan only under the feedback lock.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &File, len: u64, path: &Path) -> Result<Mapping> {
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::io(path, std::io::Error::last_os_error()));
        }
        Ok(Mapping { ptr: ptr as *mut u8, len: len as usize })
    }

    pub fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
    }

    fn slice<T>(&self, off: u64, n: u64) -> &[T] {
        assert!(
            (off as usize).is_multiple_of(std::mem::align_of::<T>())
                && off as usize + n as usize * size_of::<T>() <= self.len
        );
        unsafe { std::slice::from_raw_parts(self.ptr.add(off as usize) as *const T, n as usize) }
    }

    /// # Safety
    /// One writer at a time (the feedback lock), and no other reference to the same range.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut<T>(&self, off: u64, n: u64) -> &mut [T] {
        assert!(
            (off as usize).is_multiple_of(std::mem::align_of::<T>())
                && off as usize + n as usize * size_of::<T>() <= self.len
        );
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off as usize) as *mut T, n as usize) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Region offsets, computed from the counts.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: u64,
    pub seq_len: u64,
    pub n_seq: u64,
    pub tokens: u64,
    pub weights: u64,
    pub domains: u64,
    pub plan: u64,
    pub meta: u64,
    pub meta_len: u64,
    pub total: u64,
    /// Map mode: the chunk table (one row per shard file) and its length.
    pub chunks: u64,
    pub n_chunks: u64,
}

/// Where the tokens live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StageMode {
    /// Copied into the segment: resident in shared memory, read at memory speed.
    #[default]
    Copy,
    /// Left in the shard files, which ranks map (the page cache is the one copy per node):
    /// for curricula larger than shared memory.
    Map,
}

impl Layout {
    fn new(width: u64, seq_len: u64, n_seq: u64, with_plan: bool, meta_len: u64, map_chunks: Option<u64>) -> Layout {
        let (tokens, weights) = match map_chunks {
            Some(_) => (0, PAGE),
            None => (PAGE, align(PAGE + n_seq * seq_len * width)),
        };
        let domains = align(weights + 4 * n_seq);
        let after = align(domains + 2 * n_seq);
        let n_chunks = map_chunks.unwrap_or(0);
        let (chunks, after) = if n_chunks > 0 { (after, align(after + 24 * n_chunks)) } else { (0, after) };
        let (plan, meta) = if with_plan { (after, align(after + 8 * n_seq)) } else { (0, after) };
        Layout {
            width,
            seq_len,
            n_seq,
            tokens,
            weights,
            domains,
            plan,
            meta,
            meta_len,
            total: align(meta + meta_len),
            chunks,
            n_chunks,
        }
    }

    fn header(&self, n_domains: u64, pid: u64) -> Vec<u8> {
        let mut h = Vec::with_capacity(PAGE as usize);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&(self.width as u32).to_le_bytes());
        for v in [
            self.seq_len,
            self.n_seq,
            n_domains,
            self.tokens,
            self.weights,
            self.domains,
            self.plan,
            self.meta,
            self.meta_len,
            pid,
            self.total,
            self.chunks,
            self.n_chunks,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.resize(PAGE as usize, 0);
        h
    }
}

/// The files of a served segment.
pub struct Paths {
    pub segment: PathBuf,
    pub lock: PathBuf,
    pub socket: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path, name: &str) -> Paths {
        Paths {
            segment: dir.join(name),
            lock: dir.join(format!("{name}.lock")),
            socket: dir.join(format!("{name}.sock")),
        }
    }
}

/// Hold the name: an exclusive lock for the life of `serve`. Ranks that take it shared for a
/// moment (their liveness check) can make the first try fail, so it is tried for a second.
pub fn take_lock(paths: &Paths, mode: u32) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(&paths.lock)
        .map_err(|e| Error::io(&paths.lock, e))?;
    for _ in 0..100 {
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = read_pid(&paths.segment).map(|p| format!(" (pid {p})")).unwrap_or_default();
    Err(Error::InvalidArgument(format!(
        "{} is already served by a live syllabus serve{pid}; stop it first, or serve this curriculum a second time under \
         another name with --name",
        paths.segment.display()
    )))
}

fn read_pid(segment: &Path) -> Option<u64> {
    let mut h = [0u8; 96];
    File::open(segment).ok()?.read_exact(&mut h).ok()?;
    (&h[..8] == MAGIC).then(|| u64::from_le_bytes(h[88..96].try_into().unwrap()))
}

/// A staged, published segment.
pub struct Segment {
    pub map: Mapping,
    pub layout: Layout,
    pub paths: Paths,
    /// A previous owner's pid, when its stale segment was replaced.
    pub replaced: Option<u64>,
}

impl Segment {
    pub fn domains(&self) -> &[u16] {
        self.map.slice(self.layout.domains, self.layout.n_seq)
    }

    /// # Safety
    /// Only under the feedback lock.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn plan_mut(&self) -> &mut [u64] {
        if self.layout.plan == 0 {
            return &mut [];
        }
        unsafe { self.map.slice_mut(self.layout.plan, self.layout.n_seq) }
    }

    /// Publish how many positions are planned (after writing them).
    pub fn publish(&self, planned: u64, decisions: u64) {
        self.map.atomic(OFF_DECISIONS).store(decisions, Ordering::Release);
        let planned = if self.layout.plan == 0 { self.layout.n_seq } else { planned.min(self.layout.n_seq) };
        self.map.atomic(OFF_PLANNED).store(planned, Ordering::Release);
    }

    /// Positions ranks may read (as last published).
    pub fn published(&self) -> u64 {
        self.map.atomic(OFF_PLANNED).load(Ordering::Acquire)
    }

    /// Mark closed and remove the files (a clean stop).
    pub fn close(&self) {
        self.map.atomic(OFF_STATE).store(STATE_CLOSED, Ordering::Release);
        let _ = std::fs::remove_file(&self.paths.segment);
        let _ = std::fs::remove_file(&self.paths.socket);
    }
}

/// The shards of a manifest that a segment holds.
pub fn syllabus_shards(m: &Manifest, dir: &Path) -> Result<Vec<ShardEntry>> {
    let shards: Vec<ShardEntry> = m.shards.iter().filter(|s| s.format == "syllabus").cloned().collect();
    if shards.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: the curriculum has no syllabus-format shards to serve (add \"syllabus\" to [output] formats)",
            dir.display()
        )));
    }
    Ok(shards)
}

/// What staging needs.
pub struct StageRequest<'a> {
    pub dir: &'a Path,
    pub manifest: &'a Manifest,
    pub paths: Paths,
    pub with_plan: bool,
    pub stage: StageMode,
    pub meta: serde_json::Value,
    pub mode: u32,
}

fn shm_err(path: &Path, need: u64, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        let dir = path.parent().unwrap_or(Path::new("/"));
        Error::InvalidArgument(format!(
            "{}: not enough shared memory for the curriculum ({need} bytes); free space there or set SYLLABUS_SHM_DIR",
            dir.display()
        ))
    } else {
        Error::io(path, e)
    }
}

/// Stage every shard into a new segment, checking each against the manifest (size, checksum,
/// header, sequence numbering) and refusing the first that does not match, by name. The lock
/// must be held. Memory: one shard at a time.
pub fn stage(req: StageRequest) -> Result<Segment> {
    let m = req.manifest;
    let shards = syllabus_shards(m, req.dir)?;
    let width = match m.token_dtype.as_str() {
        "u16" => 2,
        "u32" => 4,
        other => return Err(Error::InvalidArgument(format!("manifest: unknown token_dtype {other:?}"))),
    };
    let seq_len = m.seq_len as u64;
    let n_seq: u64 = shards.iter().map(|s| s.sequences).sum();
    let meta = serde_json::to_vec(&req.meta).expect("metadata serializes");
    let map_chunks = (req.stage == StageMode::Map).then_some(shards.len() as u64);
    let layout = Layout::new(width, seq_len, n_seq, req.with_plan, meta.len() as u64, map_chunks);
    let replaced = req.paths.segment.exists().then(|| read_pid(&req.paths.segment).unwrap_or(0));

    let tmp = req.paths.segment.with_file_name(format!(
        ".{}.{}.tmp",
        req.paths.segment.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(req.mode)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    let cleanup = TmpGuard(tmp.clone());
    // The mode is explicit, whatever the umask.
    file.set_permissions(std::fs::Permissions::from_mode(req.mode)).map_err(|e| Error::io(&tmp, e))?;
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, layout.total as libc::off_t) };
    if r != 0 {
        return Err(shm_err(&tmp, layout.total, std::io::Error::from_raw_os_error(r)));
    }
    let write_at = |bytes: &[u8], off: u64| file.write_all_at(bytes, off).map_err(|e| shm_err(&tmp, layout.total, e));

    let mut next = 0u64;
    for (i, s) in shards.iter().enumerate() {
        let path = req.dir.join(&s.path);
        let refuse = |what: String| Error::InvalidArgument(format!("{}: refused: {what}", path.display()));
        // What verify refuses, serve refuses: the shard's size and every header field against
        // the manifest (whose numbering Manifest::load checked), so the slices below are its.
        let (data, _) = read_listed(req.dir, m, s).map_err(refuse)?;
        let tok_bytes = (s.sequences * seq_len * width) as usize;
        let (t0, t1) = (SHARD_HEADER, SHARD_HEADER + tok_bytes);
        let w1 = t1 + 4 * s.sequences as usize;
        let d1 = w1 + 2 * s.sequences as usize;
        match req.stage {
            StageMode::Copy => write_at(&data[t0..t1], layout.tokens + next * seq_len * width)?,
            StageMode::Map => {
                let row: Vec<u8> = [next, s.sequences, t0 as u64].iter().flat_map(|v| v.to_le_bytes()).collect();
                write_at(&row, layout.chunks + 24 * i as u64)?;
            }
        }
        write_at(&data[t1..w1], layout.weights + next * 4)?;
        write_at(&data[w1..d1], layout.domains + next * 2)?;
        next += s.sequences;
    }
    write_at(&meta, layout.meta)?;
    write_at(&layout.header(m.domains.len() as u64, std::process::id() as u64), 0)?;
    let map = Mapping::new(&file, layout.total, &tmp)?;
    map.atomic(OFF_PLANNED).store(if req.with_plan { 0 } else { n_seq }, Ordering::Release);
    map.atomic(OFF_STATE).store(STATE_READY, Ordering::Release);
    // Publish: atomically replaces a stale segment of the same name.
    std::fs::rename(&tmp, &req.paths.segment).map_err(|e| Error::io(&req.paths.segment, e))?;
    std::mem::forget(cleanup);
    Ok(Segment { map, layout, paths: req.paths, replaced })
}

/// Removes a temporary file unless forgotten.
struct TmpGuard(PathBuf);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
