//! Outputs written to a store.
//!
//! A command writes an output that is a store URL into a local staging directory, exactly as
//! it writes a local output (atomic renames, the work directory that lets a killed run resume),
//! then [`Staged::commit`] uploads it. Why stage locally rather than keep markers in the store:
//! object stores have no rename and no append, so the resume markers, the atomically replaced
//! files and the shard writer's appends would each need a second, store-specific design; with
//! staging, a killed run resumes from its local work exactly as a local run does and therefore
//! ends byte-identical to a clean one, and the store only ever receives finished files. The
//! cost is local disk for the outputs (not for the lake, which is streamed).
//!
//! The commit: the output's commit files (`manifest.json`, `summary.json`) are deleted from the
//! store first, so no reader trusts an old manifest while its shards are replaced; then every
//! other file is uploaded (multipart, in [`PART_BYTES`] parts, for files over that size);
//! stale objects under `shards/` and `megatron/` that the new output does not have are removed;
//! the commit files go last. A reader that sees a manifest therefore sees every file it names,
//! complete. Each finished upload is recorded in the staging directory (`UPLOADED`: path, size,
//! hash), so a commit killed part way skips, when run again, what is already in the store.
//! Once committed, the staging directory is removed.
//!
//! Staging directories live under `$SYLLABUS_STAGE_DIR`, else `$XDG_CACHE_HOME/syllabus/stage`,
//! else `~/.cache/syllabus/stage`, one per output URL.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::{block, redact, remote, store_error, Remote};
use crate::error::{Error, Result};

/// Files over this size are uploaded in parts of this size (S3 needs at least 5 MiB per part).
pub const PART_BYTES: usize = 8 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Files uploaded at once.
const FILES_IN_FLIGHT: usize = 4;
/// The files that make an output complete, uploaded last.
const COMMIT_FILES: &[&str] = &["manifest.json", "summary.json"];

/// An output path as the command writes it.
#[derive(Debug)]
pub struct Staged {
    /// Where the command writes (the output itself when it is local).
    local: PathBuf,
    /// The staging directory (holding `local` and its work directory) of a store output.
    root: Option<PathBuf>,
    remote: Option<Remote>,
}

/// What a commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    pub files: usize,
    pub bytes: u64,
    /// Files a previous, interrupted commit had uploaded already.
    pub skipped: usize,
}

/// Where the staging directories go.
pub fn stage_root() -> PathBuf {
    if let Some(d) = std::env::var_os("SYLLABUS_STAGE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("syllabus").join("stage")
}

impl Staged {
    /// `out` as the command should write it: itself when local, a staging path when a URL.
    pub fn new(out: &Path) -> Result<Staged> {
        let Some(r) = remote(out)? else {
            return Ok(Staged { local: super::local(out).into_owned(), root: None, remote: None });
        };
        probe_writable(&r)?;
        let name = r.key.filename().filter(|n| !n.is_empty()).unwrap_or("out").to_string();
        let root = stage_root().join(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(r.url.as_bytes())));
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Staged { local: root.join(name), root: Some(root), remote: Some(r) })
    }

    /// Where the command writes.
    pub fn path(&self) -> &Path {
        &self.local
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The output as the user named it.
    pub fn display(&self) -> String {
        match &self.remote {
            Some(r) => redact(&r.url),
            None => self.local.display().to_string(),
        }
    }

    /// Upload a finished store output (nothing to do for a local one) and remove its staging
    /// directory.
    pub fn commit(&self) -> Result<Uploaded> {
        let (Some(r), Some(root)) = (&self.remote, &self.root) else { return Ok(Uploaded::default()) };
        let report = upload(&self.local, root, r)?;
        std::fs::remove_dir_all(root).map_err(|e| Error::io(root, e))?;
        Ok(report)
    }
}

/// Write and delete a small object beside `r`, so that an output the store will refuse (a
/// bucket that does not exist, no write permission) fails before the work, not after it.
fn probe_writable(r: &Remote) -> Result<()> {
    let parent = r.key.as_ref().rsplit_once('/').map_or("", |(p, _)| p);
    let name = format!(
        ".syllabus-write-probe-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    );
    let key = object_store::path::Path::from(if parent.is_empty() { name } else { format!("{parent}/{name}") });
    let (store, url) = (r.store.clone(), r.url.clone());
    let bucket = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let prefix = (!parent.is_empty()).then(|| object_store::path::Path::from(parent));
    block(async move {
        let missing = || {
            Err(Error::InvalidArgument(format!(
                "{}: cannot write there: the bucket (or container) {bucket} does not exist; create it, or name another output",
                redact(&url)
            )))
        };
        // A listing tells a missing bucket apart on every store (some accept a write into a
        // bucket that is not there); a listing refused for want of permission says nothing
        // about writing, so only "no such bucket" counts.
        if let Err(e) = store.list_with_delimiter(prefix.as_ref()).await {
            if matches!(e, object_store::Error::NotFound { .. }) || e.to_string().contains("NoSuchBucket") {
                return missing();
            }
        }
        match store.put(&key, PutPayload::from_static(b"")).await {
            Ok(_) => {
                // A probe that cannot be removed is harmless; the write is what was asked.
                let _ = store.delete(&key).await;
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => missing(),
            Err(e) => {
                Err(Error::InvalidArgument(format!("{}: cannot write there: {}", redact(&url), redact(&e.to_string()))))
            }
        }
    })
}

/// The outputs of one command: each store URL staged locally, all uploaded once the command
/// has finished.
#[derive(Debug, Default)]
pub struct Outputs {
    staged: Vec<Staged>,
}

impl Outputs {
    /// Where the command should write `out` (itself when local).
    pub fn stage(&mut self, out: &Path) -> Result<PathBuf> {
        let s = Staged::new(out)?;
        let local = s.path().to_path_buf();
        if s.is_remote() {
            shown_names().lock().unwrap_or_else(|p| p.into_inner()).push((local.clone(), s.display()));
            self.staged.push(s);
        }
        Ok(local)
    }

    /// [`Outputs::stage`] for an optional output.
    pub fn stage_opt(&mut self, out: &mut Option<PathBuf>) -> Result<()> {
        if let Some(p) = out {
            *p = self.stage(p)?;
        }
        Ok(())
    }

    /// Where the staged outputs of a failed command are kept, to say so: a run started
    /// again resumes from them.
    pub fn kept(&self) -> Vec<(String, PathBuf)> {
        let holds_something = |r: &Path| std::fs::read_dir(r).is_ok_and(|mut d| d.next().is_some());
        self.staged
            .iter()
            .filter_map(|s| s.root.as_ref().filter(|r| holds_something(r)).map(|r| (s.display(), r.clone())))
            .collect()
    }

    /// [`Outputs::stage`] in place.
    pub fn stage_in_place(&mut self, out: &mut PathBuf) -> Result<()> {
        *out = self.stage(out)?;
        Ok(())
    }

    /// Upload every store output, each with its commit files last, and say so on stderr.
    pub fn commit(self) -> Result<()> {
        for s in self.staged {
            if !s.path().exists() {
                // An optional output the command did not write.
                continue;
            }
            let u = s.commit().map_err(|e| {
                let kept = s.root.as_ref().map_or(String::new(), |r| r.display().to_string());
                Error::InvalidArgument(format!(
                    "{e}\n  the finished output is kept in {kept}: run the same command again to upload it (finished work is skipped), or remove that directory"
                ))
            })?;
            let again = if u.skipped > 0 {
                format!("; {} already there from an interrupted upload", u.skipped)
            } else {
                String::new()
            };
            eprintln!("syllabus: uploaded {} ({} files, {} bytes{again})", s.display(), u.files, u.bytes);
        }
        Ok(())
    }
}

fn shown_names() -> &'static std::sync::Mutex<Vec<(PathBuf, String)>> {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<Vec<(PathBuf, String)>>> = std::sync::OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// How to name `path` to the user: the store URL of a staged output (or of a file under a
/// staged output directory), else the path itself.
pub fn shown(path: &Path) -> String {
    for (local, url) in shown_names().lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if let Ok(rel) = path.strip_prefix(local) {
            return if rel.as_os_str().is_empty() { url.clone() } else { format!("{url}/{}", rel.display()) };
        }
    }
    path.display().to_string()
}

/// One file to upload: its path relative to the output, and where it is.
struct Item {
    rel: String,
    path: PathBuf,
    len: u64,
    hash: String,
}

fn files_of(local: &Path) -> Result<Vec<Item>> {
    let meta = std::fs::metadata(local).map_err(|e| Error::io(local, e))?;
    let mut paths = Vec::new();
    if meta.is_file() {
        paths.push((String::new(), local.to_path_buf()));
    } else {
        for p in super::list_files(local)? {
            let rel = p.strip_prefix(local).expect("under the output").to_string_lossy().replace('\\', "/");
            // The work directory (resume state) and unfinished temporaries stay local.
            let internal = rel
                .split('/')
                .enumerate()
                .any(|(i, c)| (i == 0 && c == "work") || c.ends_with(".work") || c.ends_with(".tmp"));
            if !internal {
                paths.push((rel, p));
            }
        }
    }
    paths
        .into_iter()
        .map(|(rel, path)| {
            let (len, hash) = hash_file(&path)?;
            Ok(Item { rel, len, hash, path })
        })
        .collect()
}

/// Size and xxh3-128 of a file, read in pieces.
fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, format!("{:032x}", h.digest128())))
}

fn is_commit_file(rel: &str) -> bool {
    COMMIT_FILES.iter().any(|c| rel == *c || rel.ends_with(&format!("/{c}")))
}

fn upload(local: &Path, root: &Path, r: &Remote) -> Result<Uploaded> {
    let items = files_of(local)?;
    let record_path = root.join("UPLOADED");
    let record = std::fs::read_to_string(&record_path).unwrap_or_default();
    let line = |i: &Item| format!("{}\t{}\t{}", i.rel, i.len, i.hash);
    let done: std::collections::HashSet<&str> = record.lines().collect();
    let target = |rel: &str| {
        if rel.is_empty() {
            r.clone()
        } else {
            r.with_key(object_store::path::Path::from(format!("{}/{rel}", r.key)))
        }
    };
    let (commit, data): (Vec<&Item>, Vec<&Item>) = items.iter().partition(|i| is_commit_file(&i.rel));

    // Un-commit: no reader may trust an old manifest while the files it names are replaced.
    for i in &commit {
        if !done.contains(line(i).as_str()) {
            super::remove(Path::new(&target(&i.rel).url))?;
        }
    }
    let mut report = Uploaded::default();
    let mut todo = Vec::new();
    for i in data {
        let kept = done.contains(line(i).as_str()) && super::head(&target(&i.rel))?.is_some_and(|m| m.len == i.len);
        if kept {
            report.skipped += 1;
        } else {
            todo.push(i);
        }
    }
    let mut record_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record_path)
        .map_err(|e| Error::io(&record_path, e))?;
    // Data files, several at once, each recorded as soon as it is in the store (so a commit
    // killed part way skips it next time).
    let jobs: Vec<(Remote, PathBuf, u64, String)> =
        todo.iter().map(|i| (target(&i.rel), i.path.clone(), i.len, line(i))).collect();
    let (record, path) = (record_file.try_clone().map_err(|e| Error::io(&record_path, e))?, record_path.clone());
    let (files, bytes) = block(async move {
        let mut record = record;
        let mut uploads = futures::stream::iter(jobs)
            .map(|(t, p, len, line)| async move { put_file(&t, &p, len).await.map(|()| (len, line)) })
            .buffer_unordered(FILES_IN_FLIGHT);
        let (mut files, mut bytes) = (0usize, 0u64);
        while let Some(done) = uploads.next().await {
            let (len, line) = done?;
            append_record(&mut record, &path, &line)?;
            files += 1;
            bytes += len;
            crate::failpoint::hit(format_args!("upload-{files}"));
        }
        Ok::<_, Error>((files, bytes))
    })?;
    report.files += files;
    report.bytes += bytes;
    remove_stale(r, &items)?;
    // The commit point.
    for i in commit {
        put_file_blocking(&target(&i.rel), &i.path, i.len)?;
        append_record(&mut record_file, &record_path, &line(i))?;
        report.files += 1;
        report.bytes += i.len;
    }
    Ok(report)
}

/// One finished upload in the staging directory's `UPLOADED` record, synced.
fn append_record(f: &mut std::fs::File, path: &Path, line: &str) -> Result<()> {
    writeln!(f, "{line}").and_then(|_| f.sync_data()).map_err(|e| Error::io(path, e))
}

/// Objects under the output's `shards/` and `megatron/` that the new output does not have (a
/// local run removes these directories when its settings change).
fn remove_stale(r: &Remote, items: &[Item]) -> Result<()> {
    for sub in ["shards", "megatron"] {
        let dir = PathBuf::from(format!("{}/{sub}", r.url));
        if !super::is_dir(&dir) {
            continue;
        }
        for p in super::list_files(&dir)? {
            let rel = p.to_string_lossy().strip_prefix(&format!("{}/", r.url)).map(str::to_string);
            if rel.is_some_and(|rel| !items.iter().any(|i| i.rel == rel)) {
                super::remove(&p)?;
            }
        }
    }
    Ok(())
}

fn put_file_blocking(t: &Remote, path: &Path, len: u64) -> Result<()> {
    let (t2, p2) = (t.clone(), path.to_path_buf());
    block(async move { put_file(&t2, &p2, len).await })
}

/// Upload one file: one request up to [`PART_BYTES`], a multipart upload above.
async fn put_file(t: &Remote, path: &Path, len: u64) -> Result<()> {
    let io = |e| Error::io(path, e);
    super::forget_meta(&t.url);
    if len <= PART_BYTES as u64 {
        let bytes = std::fs::read(path).map_err(io)?;
        t.store.put(&t.key, PutPayload::from(bytes)).await.map_err(|e| store_error(&t.url, None, e))?;
        return Ok(());
    }
    let upload = t.store.put_multipart(&t.key).await.map_err(|e| store_error(&t.url, None, e))?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; PART_BYTES];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        w.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| store_error(&t.url, Some(offset), e))?;
        w.write(&buf[..n]);
        offset += n as u64;
    }
    if offset != len {
        return Err(Error::io(
            path,
            std::io::Error::other(format!("changed while uploaded ({offset} bytes, expected {len})")),
        ));
    }
    w.finish().await.map_err(|e| store_error(&t.url, None, e))?;
    Ok(())
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A store directory (a curriculum a trainer node serves) copied to local disk once: every
/// object under it, the commit files last. Kept and reused while its manifest is the same.
pub fn download_dir(dir: &Path) -> Result<PathBuf> {
    let Some(r) = remote(dir)? else { return Ok(super::local(dir).into_owned()) };
    let root = stage_root().join(format!("download-{:016x}", xxhash_rust::xxh3::xxh3_64(r.url.as_bytes())));
    let manifest_url = PathBuf::from(format!("{}/manifest.json", r.url));
    let manifest = super::read(&manifest_url)?;
    let have = std::fs::read(root.join("manifest.json")).ok();
    if have.as_deref() == Some(manifest.as_slice()) {
        return Ok(root);
    }
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    }
    for p in super::list_files(dir)? {
        let s = p.to_string_lossy().to_string();
        let Some(rel) = s.strip_prefix(&format!("{}/", r.url)) else { continue };
        if is_commit_file(rel) || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let dest = root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut src = super::open(&p)?;
        let mut out = std::fs::File::create(&dest).map_err(|e| Error::io(&dest, e))?;
        std::io::copy(&mut src, &mut out).map_err(|e| Error::io(&p, e))?;
    }
    // The manifest read first: the files it names were complete before it was written.
    crate::sink::write_atomic(&root.join("manifest.json"), &manifest)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_files_and_internal_paths() {
        assert!(is_commit_file("manifest.json") && is_commit_file("candidates/a/summary.json"));
        assert!(!is_commit_file("shards/manifest.json.tmp") && !is_commit_file("selected.parquet"));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        for f in ["manifest.json", "shards/a.syl", "work/KEY", "sel.parquet.work/KEY", "x.tmp"] {
            let p = out.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let rels: Vec<String> = files_of(&out).unwrap().into_iter().map(|i| i.rel).collect();
        assert_eq!(rels, vec!["manifest.json", "shards/a.syl"]);
    }

    #[test]
    fn a_local_output_is_written_in_place() {
        let s = Staged::new(Path::new("out/x.parquet")).unwrap();
        assert_eq!(s.path(), Path::new("out/x.parquet"));
        assert!(!s.is_remote());
        assert_eq!(s.commit().unwrap(), Uploaded::default());
    }
}
