//! The shared-memory loader: `syllabus serve` stages a curriculum once per node and the
//! Python client (`python/syllabus_loader`) reads it from every local rank, zero-copy.
//!
//! ```text
//! OUT_DIR (manifest.json + shards)  --serve: verify, stage-->  /dev/shm/syllabus-<uid>-<id>
//!                                                                 | mmap (read-only)
//!   trainer ranks 0..W-1: Loader(name, rank, world_size, batch_size)  --report()-->  <id>.sock
//! ```
//!
//! Order: global batch b is positions [b·G, (b+1)·G) of the pass, G = batch_size · world_size,
//! and rank r takes its contiguous slice. Position i is curriculum sequence i unless the
//! trainer steers the mixture ([`feedback`]); then the segment's plan maps positions to
//! sequences, a pure function of the logged reports.
//!
//! Memory: `serve` holds one shard at a time while staging; the segment holds the
//! curriculum's tokens, weights and domains once per node (plus 8 bytes per sequence for a
//! steered plan); ranks map it and hold nothing that grows with it.

pub mod feedback;
pub mod segment;
pub mod serve;
