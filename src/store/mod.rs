//! Paths that may be object-store URLs: `s3://`, `gs://`, `az://` / `abfss://`, `http(s)://`
//! and `file://` work wherever a local path does.
//!
//! A URL travels through syllabus as a `Path` holding its text (`s3://bucket/lake/a.jsonl`), so
//! it names the file in ids, errors and summaries exactly as the user wrote it; the functions
//! here ([`open`], [`read`], [`stat`], [`list_files`], [`glob`], ...) do what `std::fs` does for
//! a local path and the store's request for a URL. One client per store (bucket, container,
//! host) is built on first use from the standard credential chains and [`StoreSettings`]
//! ([`configure`]) and shared by the readers, the writers ([`output`]) and the SQL session
//! ([`registry`]).
//!
//! Reads stream: [`open`] returns the object's body as it arrives (jsonl, .gz and .zst are
//! decoded from it), object_store retries a body cut short from the byte where it stopped, and
//! a body that ends before the object's length is an error naming the URL and the byte offset
//! (never a silent short read). Parquet is read by ranged requests for the footer and for the
//! column chunks a query needs ([`ParquetSource`]).
//!
//! Memory: an open object holds at most [`READ_AHEAD`] bytes of its body ahead of its reader
//! (so the network runs ahead while a batch is parsed and scored); [`prefetch`] starts the
//! next objects of a lake while the current one is read (at most two waiting), each with the
//! same bound: at most 3 x 16 MiB of bodies per reading thread. A
//! Parquet reader holds the column chunks of one row group, as for a local file. Listing a
//! prefix holds one entry (key, size, time) per object, as a local directory walk does.

pub mod config;
pub mod output;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

pub use self::config::{redact, redact_json, Kind, StoreSettings};
use crate::error::{Error, Result};

/// Bytes of an object's body read ahead of its reader.
pub const READ_AHEAD: usize = 16 << 20;
/// Body bytes passed to the reader at a time.
const COALESCE: usize = 512 << 10;
/// [`READ_AHEAD`] as semaphore permits of 1 KiB.
const READ_AHEAD_KIB: usize = READ_AHEAD >> 10;

/// Whether `s` is a URL of a store syllabus reaches (or `file://`).
pub fn is_url(s: &str) -> bool {
    scheme(s).is_some_and(|sc| sc == "file" || Kind::of(sc).is_some())
}

fn scheme(s: &str) -> Option<&str> {
    let (sc, _) = s.split_once("://")?;
    (!sc.is_empty() && sc.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')).then_some(sc)
}

/// Whether `path` names an object in a store (not a local file, not `file://`).
pub fn is_remote(path: &Path) -> bool {
    path.to_str().and_then(scheme).is_some_and(|sc| Kind::of(sc).is_some())
}

/// Whether `path` is an `http(s)://` URL (one file: HTTP has no listing).
pub fn is_http(path: &Path) -> bool {
    path.to_str().and_then(scheme).is_some_and(|sc| Kind::of(sc) == Some(Kind::Http))
}

/// `file://` URLs as local paths; anything else unchanged.
pub fn local(path: &Path) -> std::borrow::Cow<'_, Path> {
    if let Some(s) = path.to_str().filter(|s| s.starts_with("file://")) {
        if let Ok(p) = url::Url::parse(s).map_err(|_| ()).and_then(|u| u.to_file_path()) {
            return std::borrow::Cow::Owned(p);
        }
    }
    std::borrow::Cow::Borrowed(path)
}

/// `scheme://authority` of a URL: what one client serves.
pub(crate) fn base_url(url: &url::Url) -> String {
    let mut s = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        s.push_str(url.username());
        s.push('@');
    }
    s.push_str(url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s
}

struct State {
    settings: StoreSettings,
    stores: HashMap<String, Arc<dyn ObjectStore>>,
}

fn state() -> &'static RwLock<State> {
    static STATE: OnceLock<RwLock<State>> = OnceLock::new();
    STATE.get_or_init(|| RwLock::new(State { settings: StoreSettings::default(), stores: HashMap::new() }))
}

/// Use these settings for every store from now on (clients already built are rebuilt).
pub fn configure(settings: StoreSettings) -> Result<()> {
    settings.check()?;
    config::remember_option_secrets(&settings);
    let mut st = state().write().unwrap_or_else(|p| p.into_inner());
    if st.settings != settings {
        st.settings = settings;
        st.stores.clear();
    }
    Ok(())
}

/// An object: its store's client, its key, and its URL as written.
#[derive(Clone)]
pub struct Remote {
    pub store: Arc<dyn ObjectStore>,
    pub key: ObjPath,
    pub url: String,
    /// `scheme://authority`, to make the URLs of listed keys.
    pub base: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Remote {
    /// The URL of another key of the same store.
    fn url_of(&self, key: &ObjPath) -> String {
        format!("{}/{}", self.base, key)
    }

    /// The same store, another key.
    fn with_key(&self, key: ObjPath) -> Remote {
        Remote { url: self.url_of(&key), key, store: self.store.clone(), base: self.base.clone() }
    }
}

/// The object `path` names, when it is a store URL.
pub fn remote(path: &Path) -> Result<Option<Remote>> {
    let Some(s) = path.to_str() else { return Ok(None) };
    let Some(kind) = scheme(s).and_then(Kind::of) else { return Ok(None) };
    let url = url::Url::parse(s).map_err(|e| Error::InvalidArgument(format!("{}: not a valid URL: {e}", redact(s))))?;
    if url.query().is_some() {
        // object_store addresses objects by path: a query (a presigned URL's signature) would
        // be dropped from every request, so it is refused rather than silently ignored.
        return Err(Error::InvalidArgument(format!(
            "{}: URLs with a query string (presigned URLs) are not supported; use the store's credentials",
            redact(s)
        )));
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err(Error::InvalidArgument(format!("{}: the URL names no bucket, container or host", redact(s))));
    }
    let base = base_url(&url);
    let key = ObjPath::from_url_path(url.path())
        .map_err(|e| Error::InvalidArgument(format!("{}: not a valid object key: {e}", redact(s))))?;
    let store = store_for(kind, &url, &base)?;
    Ok(Some(Remote { store, key, url: s.trim_end_matches('/').to_string(), base }))
}

fn store_for(kind: Kind, url: &url::Url, base: &str) -> Result<Arc<dyn ObjectStore>> {
    if let Some(s) = state().read().unwrap_or_else(|p| p.into_inner()).stores.get(base) {
        return Ok(s.clone());
    }
    let mut st = state().write().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = st.stores.get(base) {
        return Ok(s.clone());
    }
    let store = config::build(kind, url, &st.settings)?;
    st.stores.insert(base.to_string(), store.clone());
    Ok(store)
}

/// The store's error as syllabus shows it: the URL, the byte offset where known, no secrets.
pub(crate) fn store_error(url: &str, offset: Option<u64>, e: impl std::fmt::Display) -> Error {
    let at = offset.map(|o| format!(" (at byte {o})")).unwrap_or_default();
    let msg = redact(&e.to_string());
    Error::io(PathBuf::from(redact(url)), std::io::Error::other(format!("{msg}{at}")))
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// The runtime that runs every store request; the synchronous readers wait on it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("syllabus-store")
            .enable_all()
            .build()
            .expect("a tokio runtime can be started")
    })
}

/// Run `fut` on the store runtime and wait for it (from any thread, inside another runtime
/// too: the waiting thread only blocks).
pub(crate) fn block<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("store requests run to completion")
}

/// Size and modification time of what `path` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: u64,
    /// Nanoseconds since the epoch, where known.
    pub mtime_ns: Option<u64>,
}

/// Metadata of objects already listed or fetched, so a lake of many objects is not asked for
/// each again (fingerprints, opening). Holds one entry per object seen.
fn meta_cache() -> &'static Mutex<HashMap<String, Meta>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Meta>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn meta_of(m: &object_store::ObjectMeta) -> Meta {
    Meta { len: m.size, mtime_ns: m.last_modified.timestamp_nanos_opt().map(|n| n.max(0) as u64) }
}

fn cache_meta(url: &str, m: Meta) {
    meta_cache().lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_string(), m);
}

fn forget_meta(url: &str) {
    meta_cache().lock().unwrap_or_else(|p| p.into_inner()).remove(url);
}

/// The file or object at `path` (None when there is none; a local directory is not a file).
pub fn stat(path: &Path) -> Result<Option<Meta>> {
    let Some(r) = remote(path)? else {
        let p = local(path);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(Meta {
                len: m.len(),
                mtime_ns: m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos() as u64),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        };
    };
    if let Some(m) = meta_cache().lock().unwrap_or_else(|p| p.into_inner()).get(&r.url) {
        return Ok(Some(*m));
    }
    head(&r)
}

fn head(r: &Remote) -> Result<Option<Meta>> {
    let (store, key) = (r.store.clone(), r.key.clone());
    match block(async move { store.head(&key).await }) {
        Ok(m) => {
            let m = meta_of(&m);
            cache_meta(&r.url, m);
            Ok(Some(m))
        }
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(store_error(&r.url, None, e)),
    }
}

/// Whether `path` is a file or an object.
pub fn is_file(path: &Path) -> bool {
    stat(path).is_ok_and(|m| m.is_some())
}

/// Whether `path` is a directory, or a prefix with objects under it.
pub fn is_dir(path: &Path) -> bool {
    match remote(path) {
        Ok(Some(r)) => {
            let (store, prefix) = (r.store.clone(), r.key.clone());
            block(async move { store.list(Some(&prefix)).next().await }).is_some_and(|m| m.is_ok())
        }
        Ok(None) => local(path).is_dir(),
        Err(_) => false,
    }
}

/// Whether `path` is a file, a directory, an object or a prefix with objects.
pub fn exists(path: &Path) -> bool {
    is_file(path) || is_dir(path)
}

/// Every file under the directory or prefix `dir`, recursively, sorted as paths are (component
/// by component), so a lake lists in the same order from a store as from a local copy.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(r) = remote(dir)? else {
        let mut out = Vec::new();
        walk(&local(dir), &mut out)?;
        out.sort();
        return Ok(out);
    };
    if is_http(dir) {
        return Err(Error::InvalidArgument(format!(
            "{}: an HTTP server cannot be listed: name each file (or use a store URL)",
            redact(&r.url)
        )));
    }
    let (store, prefix) = (r.store.clone(), r.key.clone());
    let metas = block(async move { store.list(Some(&prefix)).collect::<Vec<_>>().await });
    let mut out = Vec::with_capacity(metas.len());
    for m in metas {
        let m = m.map_err(|e| store_error(&r.url, None, e))?;
        let url = r.url_of(&m.location);
        cache_meta(&url, meta_of(&m));
        out.push(PathBuf::from(url));
    }
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The files directly in `dir` (not in its subdirectories), sorted.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(r) = remote(dir)? else {
        let mut out: Vec<PathBuf> = std::fs::read_dir(local(dir))
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        out.sort();
        return Ok(out);
    };
    let (store, prefix) = (r.store.clone(), r.key.clone());
    let listed = block(async move { store.list_with_delimiter(Some(&prefix)).await })
        .map_err(|e| store_error(&r.url, None, e))?;
    let mut out: Vec<PathBuf> = listed
        .objects
        .iter()
        .map(|m| {
            let url = r.url_of(&m.location);
            cache_meta(&url, meta_of(m));
            PathBuf::from(url)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The objects whose URLs match the glob `pattern` (`*`, `?` and `[...]` within one path
/// component, `**` across them), sorted as [`list_files`] sorts. The store is listed from the
/// longest prefix before the first wildcard.
pub fn glob(pattern: &str) -> Result<Vec<PathBuf>> {
    let first = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    let dir = match pattern[..first].rfind('/') {
        Some(i) => &pattern[..i],
        None => {
            return Err(Error::InvalidArgument(format!(
                "{}: a glob needs a bucket before its wildcards",
                redact(pattern)
            )))
        }
    };
    let pat = glob::Pattern::new(pattern)
        .map_err(|e| Error::InvalidArgument(format!("{}: bad glob: {e}", redact(pattern))))?;
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let files = list_files(Path::new(dir))?;
    Ok(files.into_iter().filter(|p| p.to_str().is_some_and(|s| pat.matches_with(s, opts))).collect())
}

/// The whole file or object.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let Some(r) = remote(path)? else {
        let p = local(path);
        return std::fs::read(&p).map_err(|e| Error::io(path, e));
    };
    let mut data = Vec::new();
    open_remote(&r, 0)?.read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
    Ok(data)
}

/// The whole file or object as UTF-8 text.
pub fn read_to_string(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|_| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8")))
}

/// At most `max + 1` bytes of the file or object (so a caller can tell "longer than max").
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    open(path)?.take(max + 1).read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
    Ok(data)
}

/// The file or object as a stream of bytes.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    open_at(path, 0)
}

/// The file or object from byte `offset` on (a seek, or a ranged request). An offset past the
/// end is an error.
pub fn open_at(path: &Path, offset: u64) -> Result<Box<dyn Read + Send>> {
    match remote(path)? {
        Some(r) => Ok(Box::new(open_remote(&r, offset)?)),
        None => {
            use std::io::Seek;
            let p = local(path);
            let mut f = std::fs::File::open(&p).map_err(|e| Error::io(path, e))?;
            if offset > 0 {
                let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
                if len < offset {
                    return Err(Error::io(
                        path,
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("the file is shorter than {offset} bytes: it changed"),
                        ),
                    ));
                }
                f.seek(std::io::SeekFrom::Start(offset)).map_err(|e| Error::io(path, e))?;
            }
            Ok(Box::new(f))
        }
    }
}

enum Msg {
    Data(Bytes),
    Fail(String),
}

/// An object's body as it arrives: a task on the store runtime reads the response and passes
/// its chunks through a bounded channel.
pub struct RemoteRead {
    rx: tokio::sync::mpsc::UnboundedReceiver<Msg>,
    /// KiB of read-ahead left: the task takes permits for each chunk it passes on, the reader
    /// gives them back once the chunk is consumed.
    room: Arc<tokio::sync::Semaphore>,
    /// Permits held by `chunk`.
    held: u32,
    chunk: Bytes,
    /// The absolute offset of the next byte.
    pos: u64,
    /// The object's length.
    end: u64,
    done: bool,
}

/// Streams started ahead of their readers ([`prefetch`]), by URL.
fn prefetched() -> &'static Mutex<HashMap<String, RemoteRead>> {
    static P: OnceLock<Mutex<HashMap<String, RemoteRead>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// Start reading the object at `path` (a store URL; a local path is ignored) so that a later
/// [`open`] finds its first bytes already there. At most two streams wait at a time.
pub fn prefetch(path: &Path) {
    let Ok(Some(r)) = remote(path) else { return };
    let mut p = prefetched().lock().unwrap_or_else(|e| e.into_inner());
    if p.contains_key(&r.url) || p.len() >= 2 {
        return;
    }
    if let Ok(reader) = start_remote(&r, 0) {
        p.insert(r.url.clone(), reader);
    }
}

fn open_remote(r: &Remote, offset: u64) -> Result<RemoteRead> {
    if offset == 0 {
        if let Some(reader) = prefetched().lock().unwrap_or_else(|e| e.into_inner()).remove(&r.url) {
            return Ok(reader);
        }
    }
    start_remote(r, offset)
}

fn start_remote(r: &Remote, offset: u64) -> Result<RemoteRead> {
    let (store, key) = (r.store.clone(), r.key.clone());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let room = Arc::new(tokio::sync::Semaphore::new(READ_AHEAD_KIB));
    let task_room = room.clone();
    let (meta_tx, meta_rx) = std::sync::mpsc::sync_channel::<std::result::Result<(u64, u64), object_store::Error>>(1);
    runtime().spawn(async move {
        let opts = GetOptions { range: (offset > 0).then_some(GetRange::Offset(offset)), ..Default::default() };
        let res = match store.get_opts(&key, opts).await {
            Ok(res) => res,
            Err(e) => {
                let _ = meta_tx.send(Err(e));
                return;
            }
        };
        let _ = meta_tx.send(Ok((res.meta.size, res.range.start)));
        let mut body = res.into_stream();
        // HTTP chunks (often 8-16 KiB) are gathered into pieces of COALESCE bytes, so the
        // reader wakes once per piece rather than once per network read.
        let mut piece = bytes::BytesMut::new();
        loop {
            let next = body.next().await;
            let msg = match next {
                Some(Ok(b)) => {
                    if piece.is_empty() && b.len() >= COALESCE {
                        Msg::Data(b)
                    } else {
                        piece.extend_from_slice(&b);
                        if piece.len() < COALESCE {
                            continue;
                        }
                        Msg::Data(piece.split().freeze())
                    }
                }
                Some(Err(e)) => Msg::Fail(e.to_string()),
                None if !piece.is_empty() => Msg::Data(piece.split().freeze()),
                None => return,
            };
            if let Msg::Data(b) = &msg {
                // Wait for room: the reader gives permits back as it consumes pieces.
                match task_room.acquire_many(kib(b.len())).await {
                    Ok(p) => p.forget(),
                    Err(_) => return,
                }
            }
            let fail = matches!(msg, Msg::Fail(_));
            if tx.send(msg).is_err() || fail {
                return;
            }
        }
    });
    let (size, start) = match meta_rx.recv() {
        Ok(Ok(m)) => m,
        Ok(Err(e)) if not_found(&e) => {
            return Err(Error::NotFound { path: PathBuf::from(redact(&r.url)) });
        }
        Ok(Err(e)) => {
            let shorter = offset > 0 && matches!(stat(Path::new(&r.url)), Ok(Some(m)) if m.len < offset);
            if shorter {
                return Err(store_error(
                    &r.url,
                    None,
                    format!("the object is shorter than {offset} bytes: it changed"),
                ));
            }
            return Err(store_error(&r.url, (offset > 0).then_some(offset), e));
        }
        Err(_) => return Err(store_error(&r.url, None, "the request was dropped")),
    };
    cache_meta(&r.url, Meta { len: size, mtime_ns: stat_cached_mtime(&r.url) });
    Ok(RemoteRead { rx, room, held: 0, chunk: Bytes::new(), pos: start, end: size, done: false })
}

/// The read-ahead permits a chunk of `len` bytes takes (at least one, at most all).
fn kib(len: usize) -> u32 {
    len.div_ceil(1024).clamp(1, READ_AHEAD_KIB) as u32
}

fn stat_cached_mtime(url: &str) -> Option<u64> {
    meta_cache().lock().unwrap_or_else(|p| p.into_inner()).get(url).and_then(|m| m.mtime_ns)
}

impl Drop for RemoteRead {
    fn drop(&mut self) {
        // A task waiting for room stops (and drops its connection).
        self.room.close();
    }
}

impl Read for RemoteRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.held > 0 {
                self.room.add_permits(self.held as usize);
                self.held = 0;
            }
            if self.done {
                return Ok(0);
            }
            match futures::executor::block_on(self.rx.recv()) {
                Some(Msg::Data(b)) => {
                    self.held = kib(b.len());
                    self.chunk = b;
                }
                Some(Msg::Fail(e)) => {
                    self.done = true;
                    // The caller names the URL.
                    return Err(std::io::Error::other(format!(
                        "the connection failed at byte {} of {}: {}",
                        self.pos,
                        self.end,
                        redact(&e)
                    )));
                }
                None => {
                    self.done = true;
                    if self.pos < self.end {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("the body ended at byte {} of {}: a short read", self.pos, self.end),
                        ));
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}

/// What the Parquet reader reads from: a local file, or ranged requests to an object. A server
/// that answers no range requests (a plain HTTP server) gets one request for the whole object,
/// which is then held in memory while the file is read.
pub enum ParquetSource {
    Local(std::fs::File),
    Remote { remote: Remote, len: u64, whole: OnceLock<Bytes> },
}

impl ParquetSource {
    pub fn open(path: &Path) -> Result<ParquetSource> {
        match remote(path)? {
            None => Ok(ParquetSource::Local(std::fs::File::open(local(path)).map_err(|e| Error::io(path, e))?)),
            Some(r) => {
                let meta = stat(path)?.ok_or_else(|| Error::NotFound { path: PathBuf::from(redact(&r.url)) })?;
                Ok(ParquetSource::Remote { remote: r, len: meta.len, whole: OnceLock::new() })
            }
        }
    }
}

impl parquet::file::reader::Length for ParquetSource {
    fn len(&self) -> u64 {
        match self {
            ParquetSource::Local(f) => f.len(),
            ParquetSource::Remote { len, .. } => *len,
        }
    }
}

impl parquet::file::reader::ChunkReader for ParquetSource {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            ParquetSource::Local(f) => Ok(Box::new(f.get_read(start)?)),
            ParquetSource::Remote { remote, len, whole } => {
                if whole.get().is_some() || is_http(Path::new(&remote.url)) {
                    // Through get_bytes, which falls back to one whole-object request where
                    // ranges are not served.
                    let n = len.saturating_sub(start) as usize;
                    return Ok(Box::new(std::io::Cursor::new(self.get_bytes(start, n)?)));
                }
                Ok(Box::new(
                    open_remote(remote, start).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?,
                ))
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            ParquetSource::Local(f) => f.get_bytes(start, length),
            ParquetSource::Remote { remote, len, whole } => {
                if length == 0 {
                    return Ok(Bytes::new());
                }
                let end = start + length as u64;
                if end > *len {
                    return Err(parquet::errors::ParquetError::EOF(format!(
                        "{}: bytes {start}..{end} asked of an object of {len} bytes",
                        redact(&remote.url)
                    )));
                }
                let ext = |e: Error| parquet::errors::ParquetError::External(Box::new(e));
                let got = match whole.get() {
                    Some(all) => all.slice(start as usize..end as usize),
                    None => {
                        let (store, key) = (remote.store.clone(), remote.key.clone());
                        match block(async move { store.get_range(&key, start..end).await }) {
                            Ok(b) => b,
                            Err(object_store::Error::NotSupported { .. }) => {
                                let all = Bytes::from(read(Path::new(&remote.url)).map_err(ext)?);
                                if all.len() as u64 != *len {
                                    return Err(ext(store_error(
                                        &remote.url,
                                        None,
                                        format!("{} bytes came back of {len}: it changed", all.len()),
                                    )));
                                }
                                let _ = whole.set(all);
                                whole.get().expect("just set").slice(start as usize..end as usize)
                            }
                            Err(e) => return Err(ext(store_error(&remote.url, Some(start), e))),
                        }
                    }
                };
                if got.len() != length {
                    return Err(parquet::errors::ParquetError::EOF(format!(
                        "{}: {} bytes came back for bytes {start}..{end}: a short read",
                        redact(&remote.url),
                        got.len()
                    )));
                }
                Ok(got)
            }
        }
    }
}

/// The stores for DataFusion: a URL's store is built by the same code, with the same settings,
/// as the readers' (so `CREATE EXTERNAL TABLE ... LOCATION 's3://...'` works on any bucket).
#[derive(Debug, Default)]
pub struct Registry {
    inner: datafusion::execution::object_store::DefaultObjectStoreRegistry,
}

impl datafusion::execution::object_store::ObjectStoreRegistry for Registry {
    fn register_store(&self, url: &url::Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if Kind::of(url.scheme()).is_some() {
            let r = remote(Path::new(&format!("{}/", base_url(url))))
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?
                .expect("a store URL");
            return Ok(r.store);
        }
        self.inner.get_store(url)
    }
}

/// Remove the object or file (missing is fine).
pub fn remove(path: &Path) -> Result<()> {
    match remote(path)? {
        Some(r) => {
            forget_meta(&r.url);
            let (store, key) = (r.store.clone(), r.key.clone());
            match block(async move { store.delete(&key).await }) {
                Ok(()) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(store_error(&r.url, None, e)),
            }
        }
        None => match std::fs::remove_file(local(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert!(is_url("s3://b/k") && is_url("gs://b/k") && is_url("abfss://c@a.dfs.core.windows.net/k"));
        assert!(is_url("https://h/x.jsonl") && is_url("file:///tmp/x"));
        assert!(!is_url("lake/x.jsonl") && !is_url("/abs/x") && !is_url("ftp://h/x"));
        assert!(is_remote(Path::new("s3://b/k")) && !is_remote(Path::new("file:///tmp/x")));
        assert_eq!(local(Path::new("file:///tmp/a%20b.jsonl")), Path::new("/tmp/a b.jsonl"));
        assert_eq!(local(Path::new("rel/a.jsonl")), Path::new("rel/a.jsonl"));
    }

    #[test]
    fn remote_keys_and_bases() {
        let r = remote(Path::new("s3://bucket/lake/a%20b.jsonl")).unwrap().unwrap();
        assert_eq!(r.base, "s3://bucket");
        assert_eq!(r.key.as_ref(), "lake/a b.jsonl");
        assert!(remote(Path::new("s3:///nobucket")).is_err());
        assert!(remote(Path::new("lake/a.jsonl")).unwrap().is_none());
    }

    #[test]
    fn listed_urls_sort_as_local_paths_do() {
        // Component by component: "a/x" before "a-b/x", as a local walk sorts them.
        let mut v = [PathBuf::from("s3://b/a-b/x.jsonl"), PathBuf::from("s3://b/a/x.jsonl")];
        v.sort();
        assert_eq!(v[0], PathBuf::from("s3://b/a/x.jsonl"));
    }
}
