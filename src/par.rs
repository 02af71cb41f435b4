//! Parallelism you can turn off: batches are read in order, scored in parallel chunks, and
//! handed on in order, so results never depend on the thread count.
//!
//! Reading and decoding overlap with scoring: the pool's threads read a batch and score it by
//! turns ([`for_each_ordered`]). At most `4 * threads` batches read and not yet consumed are in
//! memory (two chunks of that many for [`for_each_chunked`]).

use rayon::prelude::*;

use crate::error::Result;
use crate::source::{LakeReader, SourceBatch};

/// What the consumer wants next.
pub enum Flow {
    Continue,
    /// Stop reading this file (by index) and go on with the next one. Batches of it that were
    /// read ahead are dropped, but their rows were counted: the row numbers (`first_row`) of
    /// later batches depend on how far reading was ahead, so a consumer that skips must not
    /// rely on them (DSIR's fit, the one that skips, stops its feature cache there).
    SkipFile(usize),
}

/// Build the global rayon pool with `threads` threads (0: one per core). Call once, early.
pub fn init_threads(threads: usize) {
    let mut b = rayon::ThreadPoolBuilder::new();
    if threads > 0 {
        b = b.num_threads(threads);
    }
    // An already initialised pool (tests, a second call) is fine: keep it.
    let _ = b.build_global();
}

fn read_chunk(reader: &mut LakeReader<'_>, n: usize) -> Result<Vec<SourceBatch>> {
    let mut chunk = Vec::with_capacity(n);
    for b in reader.by_ref().take(n) {
        chunk.push(b?);
    }
    Ok(chunk)
}

/// [`for_each_ordered`] over batches already in memory (a [`crate::source::KeptLake`]'s): no
/// file is skipped. The calling thread sinks results in order while the pool works on the
/// batches after them ([`map_ordered`], at most `4 * threads` at a time), so the sink's serial
/// work (a selection's top-k, a work directory's parts) hides behind the pool's. Called from a
/// thread of the pool, it works on chunks of that many in parallel and sinks each after it.
pub fn for_each_kept<T, W, S>(batches: impl IntoIterator<Item = SourceBatch>, work: W, mut sink: S) -> Result<()>
where
    T: Send,
    W: Fn(&SourceBatch) -> Result<T> + Sync,
    S: FnMut(SourceBatch, T) -> Result<Flow>,
{
    let chunk_len = 4 * rayon::current_num_threads().max(1);
    if rayon::current_thread_index().is_none() {
        return map_ordered(
            batches,
            chunk_len,
            |b| {
                let r = work(&b)?;
                Ok((b, r))
            },
            |(b, r)| sink(b, r).map(drop),
        );
    }
    let mut batches = batches.into_iter().peekable();
    while batches.peek().is_some() {
        let chunk: Vec<SourceBatch> = batches.by_ref().take(chunk_len).collect();
        let results = chunk.par_iter().map(&work).collect::<Vec<Result<T>>>();
        for (batch, result) in chunk.into_iter().zip(results) {
            sink(batch, result?)?;
        }
    }
    Ok(())
}

/// Run `work` on every batch of `reader` in parallel and `sink` on the results in order.
///
/// The batches stream through the pool: a task reads one batch, queues the next reading task
/// (the reader is one, behind a lock: reading passes from task to task like a baton) and then
/// works on its batch, so the threads read and work by turns and no thread waits for a chunk to
/// be read (a lake's first batches are worked on as soon as they are read). The calling thread
/// hands the results to `sink` in read order. At most `4 * threads` batches are read and not
/// yet sunk: reading pauses when that many wait, and the sink restarts it.
///
/// Called from a thread of the pool itself (where blocking on the results could starve the
/// pool), it reads and works chunk by chunk instead ([`for_each_chunked`]); both give `sink`
/// the same batches and results in the same order.
pub fn for_each_ordered<T, W, S>(reader: &mut LakeReader<'_>, work: W, sink: S) -> Result<()>
where
    T: Send,
    W: Fn(&SourceBatch) -> Result<T> + Sync,
    S: FnMut(SourceBatch, T) -> Result<Flow>,
{
    if rayon::current_thread_index().is_some() {
        return for_each_chunked(reader, work, sink);
    }
    stream::run(reader, work, sink, 4 * rayon::current_num_threads().max(1))
}

/// [`for_each_ordered`] by chunks of `4 * threads` batches: while one chunk is worked on, the
/// next is read (`rayon::join`).
pub fn for_each_chunked<T, W, S>(reader: &mut LakeReader<'_>, work: W, mut sink: S) -> Result<()>
where
    T: Send,
    W: Fn(&SourceBatch) -> Result<T> + Sync,
    S: FnMut(SourceBatch, T) -> Result<Flow>,
{
    let chunk_len = 4 * rayon::current_num_threads().max(1);
    let mut chunk = read_chunk(reader, chunk_len)?;
    let mut skipped: Vec<usize> = Vec::new();
    while !chunk.is_empty() {
        let (results, next) =
            rayon::join(|| chunk.par_iter().map(&work).collect::<Vec<Result<T>>>(), || read_chunk(reader, chunk_len));
        for (batch, result) in chunk.into_iter().zip(results) {
            if skipped.contains(&batch.file) {
                continue;
            }
            let file = batch.file;
            if let Flow::SkipFile(f) = sink(batch, result?)? {
                debug_assert_eq!(f, file);
                skipped.push(f);
            }
        }
        // Batches of a skipped file that were read ahead are dropped; stop the reader too.
        for &f in &skipped {
            reader.skip_rest_of_file(f);
        }
        chunk = next?.into_iter().filter(|b| !skipped.contains(&b.file)).collect();
        if chunk.is_empty() {
            chunk = read_chunk(reader, chunk_len)?;
        }
    }
    Ok(())
}

/// Run `work` on each of `items` on the pool and `sink` on the results in the items' order,
/// on the calling thread: at most `window` items are worked on or wait to be sunk (a task is
/// started for the next item as each result is sunk). The first error (of `work`, in item
/// order, or of `sink`) ends it: no further item is started. Called from a thread of the pool
/// (where blocking on results could starve the pool), it works on the items one by one there.
pub fn map_ordered<I, T, W, S>(items: impl IntoIterator<Item = I>, window: usize, work: W, mut sink: S) -> Result<()>
where
    I: Send,
    T: Send,
    W: Fn(I) -> Result<T> + Sync,
    S: FnMut(T) -> Result<()>,
{
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    let mut items = items.into_iter();
    if rayon::current_thread_index().is_some() {
        return items.try_for_each(|item| sink(work(item)?));
    }
    let (tx, rx) = std::sync::mpsc::channel::<(usize, std::thread::Result<Result<T>>)>();
    let stop = AtomicBool::new(false);
    let mut panicked = None;
    let result = rayon::in_place_scope(|scope| -> Result<()> {
        let (work, stop) = (&work, &stop);
        let start = |seq: usize, item: I| {
            let tx = tx.clone();
            scope.spawn(move |_| {
                // Nothing waits for an item started before the end but not yet begun.
                if !stop.load(SeqCst) {
                    let _ = tx.send((seq, catch_unwind(AssertUnwindSafe(|| work(item)))));
                }
            });
        };
        let mut started = 0usize;
        for item in items.by_ref().take(window.max(1)) {
            start(started, item);
            started += 1;
        }
        let outcome = (|| -> Result<()> {
            let mut pending = std::collections::BTreeMap::new();
            let mut next = 0usize;
            while next < started {
                let Some(result) = pending.remove(&next) else {
                    // Every started item sends exactly one result while `stop` is unset.
                    let (seq, result) = rx.recv().expect("a sender lives while items are at work");
                    pending.insert(seq, result);
                    continue;
                };
                next += 1;
                match result {
                    Ok(result) => sink(result?)?,
                    Err(p) => {
                        panicked = Some(p);
                        return Ok(());
                    }
                }
                if let Some(item) = items.next() {
                    start(started, item);
                    started += 1;
                }
            }
            Ok(())
        })();
        stop.store(true, SeqCst);
        outcome
    });
    if let Some(p) = panicked {
        resume_unwind(p);
    }
    result
}

/// The streaming [`for_each_ordered`].
mod stream {
    use std::any::Any;
    use std::collections::BTreeMap;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::mpsc::{channel, Sender};
    use std::sync::Mutex;

    use super::Flow;
    use crate::error::{Error, Result};
    use crate::source::{LakeReader, SourceBatch};

    /// What a task tells the sinking thread about read position `seq`.
    enum Msg<T> {
        /// A batch and its result (`Err`: `work` panicked).
        Done(SourceBatch, std::thread::Result<Result<T>>),
        /// The reader failed here, or panicked.
        ReadFailed(std::thread::Result<Error>),
        /// The lake ends here.
        End,
    }

    struct Reading<'r, 'a> {
        reader: &'r mut LakeReader<'a>,
        /// Read position of the next batch.
        seq: u64,
        done: bool,
    }

    struct Shared<'r, 'a, W, T> {
        reading: Mutex<Reading<'r, 'a>>,
        work: W,
        tx: Sender<(u64, Msg<T>)>,
        /// Batches read and not yet sunk or dropped.
        in_flight: AtomicUsize,
        window: usize,
        /// A reading task is queued or running.
        baton: AtomicBool,
        stop: AtomicBool,
        /// Set by the sink: one past the last file skipped (see [`Flow::SkipFile`]); files come
        /// in order, so every batch of a file before it that is still to come is a skipped one.
        skip_below: AtomicUsize,
    }

    impl<W, T> Shared<'_, '_, W, T> {
        fn send(&self, seq: u64, msg: Msg<T>) {
            // The receiver outlives every task (it is dropped after the scope ends).
            let _ = self.tx.send((seq, msg));
        }

        fn may_read(&self) -> bool {
            !self.stop.load(SeqCst) && self.in_flight.load(SeqCst) < self.window
        }
    }

    /// Queue a reading task unless one is queued or running, or reading must wait.
    fn kick<'s, W, T>(scope: &rayon::Scope<'s>, sh: &'s Shared<'_, '_, W, T>)
    where
        T: Send,
        W: Fn(&SourceBatch) -> Result<T> + Sync,
    {
        if sh.may_read() && !sh.baton.swap(true, SeqCst) {
            scope.spawn(move |s| read_then_work(s, sh));
        }
    }

    /// Holding the baton: read one batch, pass the baton on, then work on the batch.
    fn read_then_work<'s, W, T>(scope: &rayon::Scope<'s>, sh: &'s Shared<'_, '_, W, T>)
    where
        T: Send,
        W: Fn(&SourceBatch) -> Result<T> + Sync,
    {
        let read = {
            let mut r = sh.reading.lock().unwrap_or_else(|p| p.into_inner());
            if r.done || !sh.may_read() {
                None
            } else {
                let skip_below = sh.skip_below.load(SeqCst);
                let seq = r.seq;
                r.seq += 1;
                let next = catch_unwind(AssertUnwindSafe(|| {
                    // The last file skipped, if the reader is still in it (else nothing to do:
                    // the reader is past every skipped file).
                    if let Some(f) = skip_below.checked_sub(1) {
                        r.reader.skip_rest_of_file(f);
                    }
                    r.reader.next()
                }));
                match next {
                    Ok(Some(Ok(b))) => {
                        sh.in_flight.fetch_add(1, SeqCst);
                        Some((seq, b))
                    }
                    Ok(None) => {
                        r.done = true;
                        sh.send(seq, Msg::End);
                        None
                    }
                    Ok(Some(Err(e))) => {
                        r.done = true;
                        sh.send(seq, Msg::ReadFailed(Ok(e)));
                        None
                    }
                    Err(p) => {
                        r.done = true;
                        sh.send(seq, Msg::ReadFailed(Err(p)));
                        None
                    }
                }
            }
        };
        match read {
            Some((seq, batch)) => {
                scope.spawn(move |s| read_then_work(s, sh));
                let result = catch_unwind(AssertUnwindSafe(|| (sh.work)(&batch)));
                sh.send(seq, Msg::Done(batch, result));
            }
            None => {
                sh.baton.store(false, SeqCst);
                // The sink may have made room between the check above and now, and found the
                // baton taken: look again, or reading could stop for good.
                let done = sh.reading.lock().unwrap_or_else(|p| p.into_inner()).done;
                if !done {
                    kick(scope, sh);
                }
            }
        }
    }

    pub(super) fn run<T, W, S>(reader: &mut LakeReader<'_>, work: W, mut sink: S, window: usize) -> Result<()>
    where
        T: Send,
        W: Fn(&SourceBatch) -> Result<T> + Sync,
        S: FnMut(SourceBatch, T) -> Result<Flow>,
    {
        let (tx, rx) = channel::<(u64, Msg<T>)>();
        let sh = Shared {
            reading: Mutex::new(Reading { reader, seq: 0, done: false }),
            work,
            tx,
            in_flight: AtomicUsize::new(0),
            window: window.max(1),
            baton: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            skip_below: AtomicUsize::new(0),
        };
        let mut panicked: Option<Box<dyn Any + Send>> = None;
        let result = rayon::in_place_scope(|scope| -> Result<()> {
            let sh = &sh;
            let mut pending: BTreeMap<u64, Msg<T>> = BTreeMap::new();
            let mut next = 0u64;
            let outcome = (|| -> Result<()> {
                kick(scope, sh);
                loop {
                    let Some(msg) = pending.remove(&next) else {
                        // Every read position gets exactly one message, so this one will come.
                        let (seq, msg) = rx.recv().expect("the sender lives as long as the stream");
                        pending.insert(seq, msg);
                        continue;
                    };
                    next += 1;
                    let (batch, result) = match msg {
                        Msg::End => return Ok(()),
                        Msg::ReadFailed(Ok(e)) => return Err(e),
                        Msg::ReadFailed(Err(p)) | Msg::Done(_, Err(p)) => {
                            panicked = Some(p);
                            return Ok(());
                        }
                        Msg::Done(batch, Ok(result)) => (batch, result),
                    };
                    sh.in_flight.fetch_sub(1, SeqCst);
                    // Batches come in file order: those of files before `skip_below` that are
                    // still to come are of the skipped file, read ahead.
                    if batch.file >= sh.skip_below.load(SeqCst) {
                        let file = batch.file;
                        if let Flow::SkipFile(f) = sink(batch, result?)? {
                            debug_assert_eq!(f, file);
                            sh.skip_below.store(f + 1, SeqCst);
                        }
                    }
                    kick(scope, sh);
                }
            })();
            // Whatever ended the stream, no further batch is read; tasks at work finish theirs.
            sh.stop.store(true, SeqCst);
            outcome
        });
        if let Some(p) = panicked {
            resume_unwind(p);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::source::{expand_inputs, Extras, InputFile, ReadOptions};

    /// Three jsonl files of 7, 1 and 11 rows (batches of 3 rows); file 1's line is bad when
    /// `bad` (a reader error with the default policy).
    fn lake(dir: &std::path::Path, bad: bool) -> Vec<InputFile> {
        let mut paths = Vec::new();
        for (f, rows) in [7, 1, 11].into_iter().enumerate() {
            let p = dir.join(format!("f{f}.jsonl"));
            let mut body = String::new();
            for r in 0..rows {
                if bad && f == 1 {
                    body.push_str("{not json\n");
                } else {
                    body.push_str(&format!("{{\"id\": \"{f}-{r}\", \"text\": \"words {r} of file {f}\"}}\n"));
                }
            }
            std::fs::write(&p, body).unwrap();
            paths.push(p.display().to_string());
        }
        expand_inputs(&paths).unwrap()
    }

    fn opts() -> ReadOptions {
        ReadOptions { batch_rows: 3, ..Default::default() }
    }

    /// What a sink saw: per batch, its file, first row and ids, and the work's result.
    type Seen = Vec<(usize, u64, Vec<String>, usize)>;

    fn ids(b: &SourceBatch) -> Vec<String> {
        let ids = crate::batch::id_column(&b.batch).unwrap();
        ids.iter().map(|s| s.unwrap().to_string()).collect()
    }

    /// Run one of the two drivers (`window`: None for the chunked one) with a work that fails
    /// on the batch whose first id is `fail_at`, and a sink that skips file 0 after its
    /// second batch when `skip`.
    fn drive(files: &[InputFile], window: Option<usize>, fail_at: Option<&str>, skip: bool) -> (Result<()>, Seen) {
        let opts = opts();
        let mut reader = LakeReader::new(files, &opts, Extras::none(), None);
        let mut seen = Seen::new();
        let work = |b: &SourceBatch| -> Result<usize> {
            let ids = ids(b);
            if Some(ids[0].as_str()) == fail_at {
                return Err(Error::InvalidArgument(format!("work failed at {}", ids[0])));
            }
            Ok(ids.iter().map(String::len).sum())
        };
        let sink = |b: SourceBatch, n: usize| -> Result<Flow> {
            let file = b.file;
            seen.push((file, b.first_row, ids(&b), n));
            let batches_of_file = seen.iter().filter(|s| s.0 == file).count();
            Ok(if skip && file == 0 && batches_of_file == 2 { Flow::SkipFile(0) } else { Flow::Continue })
        };
        let r = match window {
            Some(w) => stream::run(&mut reader, work, sink, w),
            None => for_each_chunked(&mut reader, work, sink),
        };
        (r, seen)
    }

    #[test]
    fn streaming_gives_the_sink_what_chunks_give_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = lake(dir.path(), false);
        for skip in [false, true] {
            let (r, chunked) = drive(&files, None, None, skip);
            r.unwrap();
            assert_eq!(chunked.len(), if skip { 7 } else { 8 }, "{chunked:?}");
            if skip {
                // File 0's third batch is never sunk; files 1 and 2 are whole.
                assert!(chunked.iter().filter(|s| s.0 == 0).count() == 2);
                assert_eq!(chunked.iter().filter(|s| s.0 != 0).map(|s| s.2.len()).sum::<usize>(), 12);
            }
            // Window 1 pauses and restarts the reading after every batch.
            for window in [1, 2, 3, 64] {
                let (r, mut streamed) = drive(&files, Some(window), None, skip);
                r.unwrap();
                let mut chunked = chunked.clone();
                if skip {
                    // Row numbers after a skip count the rows read ahead of it (see Flow::SkipFile).
                    for s in streamed.iter_mut().chain(chunked.iter_mut()).filter(|s| s.0 > 0) {
                        s.1 = 0;
                    }
                }
                assert_eq!(streamed, chunked, "window {window}, skip {skip}");
            }
        }
    }

    #[test]
    fn streaming_stops_at_the_first_error_in_read_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = lake(dir.path(), false);
        for window in [1, 4] {
            let (r, seen) = drive(&files, Some(window), Some("2-3"), false);
            assert!(r.unwrap_err().to_string().contains("work failed at 2-3"));
            // Everything before the failed batch was sunk, nothing after it.
            let last = seen.last().unwrap();
            assert_eq!((last.0, &last.2[0][..]), (2, "2-0"), "{seen:?}");
            assert_eq!(seen.len(), 5);
        }
        // A reader error (file 1 is not JSON) ends the stream the same way.
        let bad = lake(dir.path(), true);
        let (r, seen) = drive(&bad, Some(2), None, false);
        let err = r.unwrap_err().to_string();
        assert!(err.contains("f1.jsonl"), "{err}");
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 0, 0]);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let files = lake(dir.path(), false);
        let opts = opts();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut reader = LakeReader::new(&files, &opts, Extras::none(), None);
            let work = |b: &SourceBatch| -> Result<()> {
                assert!(b.file != 2, "the work panicked on file 2");
                Ok(())
            };
            stream::run(&mut reader, work, |_, ()| Ok(Flow::Continue), 2)
        }));
        let p = caught.unwrap_err();
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        let msg = msg.unwrap_or_default();
        assert!(msg.contains("the work panicked on file 2"), "{msg}");
    }

    #[test]
    fn map_ordered_sinks_in_order_with_at_most_window_items_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        for window in [1, 2, 5] {
            let (at_work, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let mut sunk = Vec::new();
            let work = |i: u64| -> Result<u64> {
                let now = at_work.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                // Later items finish first.
                std::thread::sleep(std::time::Duration::from_micros(200 * (40 - i % 40)));
                at_work.fetch_sub(1, SeqCst);
                Ok(i * i)
            };
            map_ordered(0..40u64, window, work, |r| {
                sunk.push(r);
                Ok(())
            })
            .unwrap();
            assert_eq!(sunk, (0..40u64).map(|i| i * i).collect::<Vec<_>>(), "window {window}");
            assert!(most.load(SeqCst) <= window, "window {window}: {} at once", most.load(SeqCst));
        }
    }

    #[test]
    fn map_ordered_stops_at_the_first_error_and_passes_panics_on() {
        let mut sunk = Vec::new();
        let work = |i: u32| if i == 7 { Err(Error::InvalidArgument(format!("item {i} failed"))) } else { Ok(i) };
        let err = map_ordered(0..100u32, 3, work, |r| {
            sunk.push(r);
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("item 7 failed"), "{err}");
        assert_eq!(sunk, (0..7).collect::<Vec<_>>());
        // The sink's error ends it too.
        let mut n = 0;
        let err = map_ordered(0..100u32, 3, Ok, |_| {
            n += 1;
            if n == 4 {
                return Err(Error::InvalidArgument("the sink failed".into()));
            }
            Ok(())
        });
        assert!(err.is_err() && n == 4);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            map_ordered(
                0..10u32,
                2,
                |i| -> Result<u32> {
                    if i == 5 {
                        panic!("item 5 panicked")
                    } else {
                        Ok(i)
                    }
                },
                |_| Ok(()),
            )
        }));
        let p = caught.unwrap_err();
        let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
        assert!(msg.unwrap_or_default().contains("item 5 panicked"));
        // From a thread of the pool: one by one, the same results.
        let mut from_pool = Vec::new();
        rayon::scope(|_| {
            map_ordered(0..10u32, 3, Ok, |r| {
                from_pool.push(r);
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(from_pool, (0..10).collect::<Vec<_>>());
    }
}
