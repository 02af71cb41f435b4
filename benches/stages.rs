//! One criterion benchmark per stage, reporting throughput, on the fixture lake.
//!
//!     cargo bench --bench stages
//!
//! Whole-command comparisons against the reference tools: benches/compare_dsir.sh and
//! benches/compare_zipfit.sh.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use indexmap::IndexSet;
use syllabus::batch::text_column;
use syllabus::score::dsir::{sha256_bucket, Counts, DsirModel, DsirParams, Featurizer, NgramHash};
use syllabus::score::sha256;
use syllabus::score::zipfit::{ZipCompressor, ZipfitParams, ZipfitTarget};
use syllabus::select::{Noise, Ranked, TopK};
use syllabus::source::{expand_inputs, Extras, JsonlDecoder, LakeReader, ReadOptions};

fn fixture_texts() -> Vec<String> {
    let files = expand_inputs(&[concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lake")]).unwrap();
    let opts = ReadOptions::default();
    let mut out = Vec::new();
    for b in LakeReader::new(&files, &opts, Extras::none(), None) {
        let b = b.unwrap();
        out.extend(text_column(&b.batch).unwrap().iter().map(|t| t.unwrap().to_string()));
    }
    out
}

fn source(c: &mut Criterion) {
    let lines = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lake/prose.jsonl")).unwrap();
    let mut g = c.benchmark_group("source");
    g.throughput(Throughput::Bytes(lines.len() as u64));
    g.bench_function("jsonl_decode", |b| {
        b.iter(|| {
            let mut d = JsonlDecoder::new("text", "id", "prose.jsonl", &Extras::none());
            let mut seen = IndexSet::new();
            for (i, line) in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()).enumerate() {
                d.decode_line(line, i as u64 + 1, &mut seen).unwrap();
            }
            black_box(d.rows())
        })
    });
    g.finish();
}

/// The featurizer's pieces measured apart, per core, on the fixture texts (issue #28 item 7):
/// decompressing zstd jsonl, splitting words (`\w+` after Python's lowercase), hashing them.
fn featurize(c: &mut Criterion) {
    use syllabus::text::wordpunct::{py_lower_into, py_word_spans, wordpunct_spans};
    let texts = fixture_texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut g = c.benchmark_group("featurize");
    g.sample_size(10);
    let zst = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lake/code.jsonl.zst")).unwrap();
    let plain = zstd::decode_all(&zst[..]).unwrap();
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("zstd_decompress", |b| b.iter(|| black_box(zstd::decode_all(&zst[..]).unwrap().len())));
    g.throughput(Throughput::Bytes(bytes as u64));
    // Lowercase and split every text with `split` (which appends to the spans it is given).
    let split_all = |b: &mut criterion::Bencher, split: fn(&str, &mut Vec<(u32, u32)>)| {
        let (mut lower, mut spans) = (String::new(), Vec::new());
        b.iter(|| {
            let mut n = 0;
            for t in &texts {
                py_lower_into(t, &mut lower);
                spans.clear();
                split(&lower, &mut spans);
                n += spans.len();
            }
            black_box(n)
        })
    };
    g.bench_function("lower_and_split_words", |b| split_all(b, py_word_spans));
    g.bench_function("lower_and_split_wordpunct", |b| split_all(b, wordpunct_spans));
    g.bench_function("hash_words_xxh3", |b| {
        let (mut lower, mut spans) = (String::new(), Vec::new());
        let words: Vec<(String, Vec<(u32, u32)>)> = texts
            .iter()
            .map(|t| {
                py_lower_into(t, &mut lower);
                py_word_spans(&lower, &mut spans);
                (lower.clone(), spans.clone())
            })
            .collect();
        b.iter(|| {
            let mut h = 0u64;
            for (t, spans) in &words {
                for &(s, e) in spans {
                    h ^= xxhash_rust::xxh3::xxh3_64(&t.as_bytes()[s as usize..e as usize]);
                }
            }
            black_box(h)
        })
    });
    g.finish();
}

fn dsir(c: &mut Criterion) {
    let texts = fixture_texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut g = c.benchmark_group("dsir");
    g.throughput(Throughput::Bytes(bytes as u64));
    for (name, hash) in [("featurize_sha256", NgramHash::Sha256), ("featurize_fast", NgramHash::Fast)] {
        let params = DsirParams { hash, ..DsirParams::default() };
        // A fresh featurizer per iteration: every distinct n-gram is hashed once (cold cache).
        g.bench_function(format!("{name}_cold"), |b| {
            b.iter_batched(
                || Featurizer::new(&params),
                |mut fz| {
                    let mut n = 0u64;
                    for t in &texts {
                        fz.for_each_bucket(t, |x| n += u64::from(x));
                    }
                    black_box(n)
                },
                BatchSize::LargeInput,
            )
        });
        let mut fz = Featurizer::new(&params);
        g.bench_function(format!("{name}_warm"), |b| {
            b.iter(|| {
                let mut n = 0u64;
                for t in &texts {
                    fz.for_each_bucket(t, |x| n += u64::from(x));
                }
                black_box(n)
            })
        });
    }
    let params = DsirParams::default();
    let mut raw = Counts::new(params.buckets);
    for t in &texts {
        raw.add_text(&params, t);
    }
    let model = DsirModel::try_new(params, raw.clone(), raw).unwrap();
    g.bench_function("score_text", |b| b.iter(|| texts.iter().map(|t| model.score_text(t).0).sum::<f64>()));
    g.finish();

    let keys: Vec<String> = (0..10_000).map(|i| format!("word{i} other{i}")).collect();
    let mut g = c.benchmark_group("dsir_hash");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("sha256_bucket", |b| {
        b.iter(|| keys.iter().map(|k| sha256_bucket(k.as_bytes(), 10_000)).sum::<u32>())
    });
    // The same keys' digests one block at a time, and four at a time (SHA extensions where
    // the CPU has them).
    let blocks: Vec<[u8; 64]> = keys.iter().map(|k| sha256::block_of(&[k.as_bytes()])).collect();
    g.bench_function("sha256_one_block", |b| {
        b.iter(|| blocks.iter().map(|k| sha256::digest_one(k)[7]).fold(0u32, u32::wrapping_add))
    });
    let four = sha256::Four::new();
    g.bench_function("sha256_four_blocks", |b| {
        b.iter(|| {
            blocks.chunks_exact(4).map(|q| four.digest(&[q[0], q[1], q[2], q[3]])[3][7]).fold(0u32, u32::wrapping_add)
        })
    });
    g.finish();
}

fn select(c: &mut Criterion) {
    let n = 100_000u64;
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(n));
    g.bench_function("gumbel_top_k_10pct", |b| {
        b.iter(|| {
            let mut noise = Noise::gumbel(0);
            let mut top = TopK::new(10_000);
            for row in 0..n {
                let score = (row % 977) as f64 * -0.5;
                top.offer(Ranked { key: noise.key(score), row, score, file: 0, loc: row });
            }
            black_box(top.into_rows().len())
        })
    });
    g.finish();
    // What a cluster partition pays to start numpy's stream at its file's first draw.
    let mut g = c.benchmark_group("select");
    g.sample_size(10);
    g.bench_function("mt19937_jump_1e10_draws", |b| {
        b.iter(|| black_box(syllabus::select::Mt19937::jumped(0, 2 * 10_000_000_000).next_u32()))
    });
    g.finish();
}

fn zipfit(c: &mut Criterion) {
    let texts = fixture_texts();
    let targets: Vec<String> = texts.iter().rev().take(20).cloned().collect();
    let candidates: Vec<&String> = texts.iter().step_by(25).collect();
    let pairs = (candidates.len() * targets.len()) as u64;
    let mut g = c.benchmark_group("zipfit");
    g.throughput(Throughput::Elements(pairs));
    g.sample_size(10);
    for (name, compressor, level, fast) in [
        ("gzip6_pairs", ZipCompressor::Gzip, 6, false),
        ("zstd3_pairs", ZipCompressor::Zstd, 3, false),
        ("fast_pairs", ZipCompressor::Zstd, -1, true),
    ] {
        let target = ZipfitTarget::try_new(ZipfitParams { compressor, level, fast }, targets.clone()).unwrap();
        g.bench_function(name, |b| b.iter(|| candidates.iter().map(|x| target.score_text(x).unwrap()).sum::<f64>()));
    }
    g.finish();
}

fn kmeans(c: &mut Criterion) {
    use syllabus::kmeans::model::KMeansModel;
    use syllabus::kmeans::related::simhash;
    use syllabus::kmeans::vectors::{counts, feature_params, tfidf, Counter};
    let texts = fixture_texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let dims = 1u32 << 15;
    let p = feature_params(dims);
    // A model of 64 centroids made of the fixture documents themselves (the assignment's cost
    // does not depend on where the centroids come from).
    let idf = vec![1.0f32; dims as usize];
    let mut counter = Counter::default();
    let vectors: Vec<_> = texts.iter().map(|t| tfidf(counts(&p, t, &mut counter), &idf)).collect();
    let k = 64;
    let mut sums = vec![0f64; dims as usize * k];
    for (i, v) in vectors.iter().enumerate() {
        for (&j, &x) in v.idx.iter().zip(&v.val) {
            sums[j as usize * k + i % k] += f64::from(x);
        }
    }
    let model = KMeansModel::from_sums(dims, k, texts.len() as u64, idf, &sums);
    let mut g = c.benchmark_group("kmeans");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    g.bench_function("vectors", |b| {
        let mut c = Counter::default();
        b.iter(|| texts.iter().map(|t| black_box(counts(&p, t, &mut c)).nnz()).sum::<usize>())
    });
    g.bench_function("assign_k64", |b| {
        let mut sims = Vec::new();
        b.iter(|| vectors.iter().filter_map(|v| model.assign(v, &mut sims)).map(|(c, _)| c as u64).sum::<u64>())
    });
    g.bench_function("simhash", |b| b.iter(|| vectors.iter().map(|v| simhash(v)[0]).fold(0, |a, x| a ^ x)));
    g.finish();
}

fn classifier(c: &mut Criterion) {
    use syllabus::classifier::fasttext::{Model, Newlines, Scratch};
    use syllabus::classifier::train::{train, Example, Hyper};
    let texts = fixture_texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/classifier");
    let mut g = c.benchmark_group("classifier");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    // fastText's own models of the fixture lake: softmax over words, with bigrams, quantized.
    for name in ["softmax.bin", "bigrams.bin", "quantized.ftz"] {
        let m = Model::load(&root.join(name)).unwrap();
        g.bench_function(format!("predict_{name}"), |b| {
            let mut s = Scratch::default();
            b.iter(|| {
                texts
                    .iter()
                    .map(|t| {
                        m.predict(t.as_bytes(), Newlines::Space, &mut s).unwrap();
                        s.heap.len()
                    })
                    .sum::<usize>()
            })
        });
    }
    // One epoch over the fixture lake, four labels by the text's length (what is learnt does
    // not change the cost), dimension 16 with bigrams.
    let labels: Vec<String> = (0..4).map(|i| i.to_string()).collect();
    let ids: Vec<[u32; 1]> = texts.iter().map(|t| [(t.len() % 4) as u32]).collect();
    let examples: Vec<Example> = texts.iter().zip(&ids).map(|(t, l)| Example { labels: l, text: t }).collect();
    let h = Hyper { dim: 16, epoch: 1, word_ngrams: 2, bucket: 1 << 16, ..Hyper::default() };
    g.bench_function("train_epoch_dim16", |b| {
        b.iter(|| black_box(train(&examples, &labels, &h, &|_| {}).unwrap().nlabels()))
    });
    g.finish();
}

fn dedup(c: &mut Criterion) {
    use syllabus::dedup::minhash::{self, Scratch};
    use syllabus::dedup::{Compat, DedupSettings};
    use syllabus::extsort::{BandEntry, ExternalSort};
    let texts = fixture_texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    for (name, compat) in [("signature", Compat::Syllabus), ("signature_datatrove", Compat::Datatrove)] {
        let signer = DedupSettings { compat, ..Default::default() }.signer().unwrap();
        g.bench_function(name, |b| {
            let (mut buf, mut sig, mut lower) = (Scratch::default(), Vec::new(), String::new());
            b.iter(|| {
                for t in &texts {
                    minhash::lower_nfc(t, &mut String::new(), &mut lower);
                    black_box(minhash::key_of_lower(&lower, &mut Vec::new()));
                    black_box(signer.sign(t, &lower, &mut buf, &mut sig));
                }
            })
        });
    }
    g.finish();
    // The join: 1M (band key, row) entries sorted in memory and merged into groups.
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(1 << 20));
    g.sample_size(10);
    let tmp = tempfile::tempdir().unwrap();
    g.bench_function("join_1m_entries", |b| {
        b.iter_batched(
            || {
                (0..1u64 << 20)
                    .map(|row| BandEntry { key: (row * 0x9E37_79B9_7F4A_7C15) % 900_001, row })
                    .collect::<Vec<_>>()
            },
            |entries| {
                let mut s = ExternalSort::new(tmp.path(), "bench", 1 << 30);
                for e in entries {
                    s.push(e).unwrap();
                }
                let mut groups = 0u64;
                s.groups(|_| {
                    groups += 1;
                    Ok(())
                })
                .unwrap();
                groups
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn curriculum(c: &mut Criterion) {
    use syllabus::curriculum::emit::ShardBuilder;
    use syllabus::curriculum::order::{sort_file, sort_key, Rec, RecWriter};
    use syllabus::curriculum::{OrderMethod, Packing};
    use syllabus::shard::{megatron, TokenDtype};
    let texts = fixture_texts();
    let tok = syllabus::tokenize::Tok::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tokenizer.json"
    )))
    .unwrap();
    let docs: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    let n_tokens: u64 = docs.iter().map(|d| d.len() as u64 + 1).sum();
    let mut g = c.benchmark_group("curriculum");
    g.sample_size(20);
    g.throughput(Throughput::Elements(n_tokens));
    // Tokens per second of one thread (the prepare stage runs one such per core).
    g.bench_function("tokenize", |b| b.iter(|| texts.iter().map(|t| tok.encode(t).unwrap().len()).sum::<usize>()));
    g.bench_function("pack_concat_2048", |b| {
        b.iter(|| {
            let mut sb = ShardBuilder::new(TokenDtype::U16, Packing::Concat, 2048, 1, 1 << 12, 4);
            for (i, d) in docs.iter().enumerate() {
                sb.push_doc(i as u64, (i % 4) as u16, 1.0, d);
            }
            sb.finish();
            black_box(sb.ready.len())
        })
    });
    let mut sb = ShardBuilder::new(TokenDtype::U16, Packing::Concat, 2048, 1, 1 << 12, 4);
    for (i, d) in docs.iter().enumerate() {
        sb.push_doc(i as u64, (i % 4) as u16, 1.0, d);
    }
    sb.finish();
    let shard = sb.ready.pop().unwrap();
    g.bench_function("encode_syllabus_shard", |b| b.iter(|| black_box(shard.encode().len())));
    g.bench_function("encode_megatron", |b| {
        b.iter(|| black_box(megatron::encode(&shard, megatron::DTYPE_UINT16).0.len()))
    });
    g.finish();

    // The external sort, by records per second (1M records; 8 MiB runs spill and merge).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.rec");
    let mut w = RecWriter::create(&input).unwrap();
    let n = 1_000_000u64;
    for i in 0..n {
        let score = ((i.wrapping_mul(0x9E3779B97F4A7C15)) >> 11) as f64;
        w.push(&Rec { score, loss: f64::NAN, doc: i, tok_off: i, id_off: i, id_len: 1, n_tokens: 1 }).unwrap();
    }
    w.finish().unwrap();
    let mut g = c.benchmark_group("order");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    for (name, mem) in [("sort_in_memory", 256usize << 20), ("sort_external_8mib_runs", 8 << 20)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                sort_file(&input, &dir.path().join("out.rec"), dir.path(), mem, |r| {
                    sort_key(OrderMethod::Ascending, 0, 0, r)
                })
                .unwrap()
            })
        });
    }
    g.finish();
}

fn proxy(c: &mut Criterion) {
    use candle_core::Device;
    use syllabus::proxy::{self, lm, metrics, nn::Params, ProxyKind, ProxyParams};
    let texts = fixture_texts();
    let tok = syllabus::tokenize::Tok::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tokenizer.json"
    )))
    .unwrap();
    let docs: Vec<Vec<u32>> = texts.iter().take(40).map(|t| tok.encode(t).unwrap()).collect();
    let r = ProxyParams::default().resolve(ProxyKind::Lm).unwrap();
    let shape = lm::LmShape { vocab: tok.vocab_size() as usize, width: r.width, layers: r.layers, context: r.context };
    let mut p = Params::new(0, &Device::Cpu);
    let model = lm::Lm::new(shape, &mut p).unwrap();
    let engine = proxy::cpu::CpuLm::from_params(shape, &p).unwrap();
    let ws = lm::windows(&docs, r.context);
    let batch: Vec<lm::Window> = ws.iter().take(r.batch_size).copied().collect();
    let b = lm::batch(&docs, &batch, 0, &Device::Cpu).unwrap();
    let hb = lm::HostBatch::new(&docs, &batch, 0);
    let tokens: u64 = batch.iter().map(|w| w.len as u64).sum();
    let mut g = c.benchmark_group("proxy");
    g.sample_size(20);
    g.throughput(Throughput::Elements(tokens));
    // One training step's forward and backward on the default lm proxy (16 windows of 64): the
    // CPU engine, and candle's autograd (the GPU path) for comparison.
    let mut work = proxy::cpu::Work::default();
    let mut grads = vec![0f32; engine.num_params()];
    g.bench_function("lm_forward_backward", |bch| {
        bch.iter(|| {
            engine.forward(&hb.inputs, batch.len(), hb.len, &mut work);
            engine.backward(&hb.targets, &hb.mask, tokens as f64, &mut work, &mut grads)
        })
    });
    g.bench_function("lm_forward", |bch| {
        bch.iter(|| engine.forward(black_box(&hb.inputs), batch.len(), hb.len, &mut work))
    });
    g.bench_function("lm_forward_backward_candle", |bch| {
        bch.iter(|| model.loss(&b, tokens as f64).unwrap().backward().unwrap())
    });
    g.bench_function("lm_forward_candle", |bch| bch.iter(|| black_box(model.forward(&b.inputs).unwrap())));
    let all: u64 = docs.iter().map(|d| d.len() as u64 + 1).sum();
    g.throughput(Throughput::Elements(all));
    let trained = proxy::LmModel::Cpu(engine.clone());
    g.bench_function("lm_score_docs", |bch| {
        bch.iter(|| proxy::score_lm(&trained, &docs, 0, 16, proxy::Grand::No).unwrap())
    });
    g.finish();
    let logits: Vec<f32> = (0..2048).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
    let mut g = c.benchmark_group("proxy_metrics");
    g.throughput(Throughput::Elements(1));
    g.bench_function("loss_and_el2n_vocab_2048", |bch| bch.iter(|| metrics::loss_and_el2n(black_box(&logits), 17)));
    g.finish();
}

fn eval(c: &mut Criterion) {
    use syllabus::eval::{data, kl, train};
    use syllabus::proxy::{lm, ProxyKind, ProxyParams};
    use syllabus::score::dsir::Counts;
    let texts = fixture_texts();
    let tok = syllabus::tokenize::Tok::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/tokenizer.json"
    )))
    .unwrap();
    let units: Vec<data::Unit> = texts
        .iter()
        .take(60)
        .map(|t| {
            let mut tokens = vec![0];
            tokens.extend(tok.encode(t).unwrap());
            tokens.push(0);
            data::Unit { tokens, weight: 1.0 }
        })
        .collect();
    let params = kl::params();
    let cand = data::Streams {
        kind: data::Kind::Table,
        units,
        documents: 60,
        counts: Counts::new(params.buckets),
        hash: String::new(),
    };
    let r = ProxyParams::default().resolve(ProxyKind::Lm).unwrap();
    let shape = lm::LmShape { vocab: tok.vocab_size() as usize, width: r.width, layers: r.layers, context: r.context };
    let mut model = train::Model::new(shape, &r, 0, &syllabus::proxy::Backend::Engine).unwrap();
    let step = r.batch_size * r.context;
    let mut g = c.benchmark_group("eval");
    g.sample_size(20);
    g.throughput(Throughput::Elements(step as u64));
    // One equal-compute step's pieces and batch (1024 predictions), and the step itself
    // (forward, backward, AdamW).
    g.bench_function("step_pieces_and_batch", |bch| {
        let mut stream = train::Stream::new(&cand, 0, r.context).unwrap();
        bch.iter(|| train::batch(&cand.units, &stream.take(step), true))
    });
    let mut stream = train::Stream::new(&cand, 0, r.context).unwrap();
    let pieces = stream.take(step);
    let b = train::batch(&cand.units, &pieces, true);
    g.bench_function("step", |bch| bch.iter(|| model.step(&b, pieces.len(), step as f64, 1e-4).unwrap()));
    let valid = &cand.units[..20];
    g.throughput(Throughput::Elements(valid.iter().map(|u| u.predictions()).sum()));
    g.bench_function("validate", |bch| bch.iter(|| model.mean_loss(black_box(valid), r.context).unwrap()));
    // KL of two 10,000-bucket distributions (per candidate and validation set).
    let mut a = Counts::new(params.buckets);
    let mut z = Counts::new(params.buckets);
    for (i, t) in texts.iter().enumerate() {
        if i % 2 == 0 {
            a.add_text(&params, t)
        } else {
            z.add_text(&params, t)
        };
    }
    let (da, dz) = (kl::Distribution::from_counts(&a), kl::Distribution::from_counts(&z));
    g.throughput(Throughput::Elements(params.buckets as u64));
    g.bench_function("kl_10000_buckets", |bch| bch.iter(|| kl::kl(black_box(&da), black_box(&dz))));
    g.finish();
}

fn mix(c: &mut Criterion) {
    use syllabus::mix::{allocate, fit};
    use syllabus::proxy::nn::Rng;
    // mix's reduce: the three families fitted with leave-one-out penalties over 32 runs of
    // 8 domains, and the constrained minimum of one fit's prediction (20,000 starts, then
    // pairwise transfers). Training dominates a search; this is what it adds.
    let k = 8;
    let natural: Vec<f64> = (1..=k).map(|i| i as f64 / (k * (k + 1) / 2) as f64).collect();
    let mut rng = Rng::new(1);
    let w: Vec<Vec<f64>> =
        (0..32).map(|_| fit::dirichlet(&mut rng, &natural.iter().map(|n| n * 8.0).collect::<Vec<_>>())).collect();
    let loss: Vec<f64> = w
        .iter()
        .map(|x| 4.0 - x.iter().enumerate().map(|(i, v)| (v + 0.01).ln() * 0.02 * i as f64).sum::<f64>())
        .collect();
    let mut g = c.benchmark_group("mix");
    g.sample_size(10);
    g.bench_function("fit_3_families_32_runs_8_domains", |b| b.iter(|| fit::fit_all(black_box(&w), black_box(&loss))));
    let (fits, chosen) = fit::fit_all(&w, &loss);
    let f = fits[chosen.unwrap()].clone();
    let space = fit::Feasible { cap: vec![0.5; k], natural: natural.clone(), max_kl: None };
    g.bench_function("minimise_8_domains", |b| b.iter(|| fit::minimise(|x| f.predict(x), &space, 0, 20_000)));
    g.bench_function("allocate_8_domains", |b| b.iter(|| allocate(black_box(&natural), 1 << 30)));
    g.finish();
}

fn loader(c: &mut Criterion) {
    use syllabus::loader::feedback::{dump_mixture, Planner};
    // serve's re-planning: positions per second dealt out under a steered mixture of four
    // domains (1M sequences), and one DUMP decision.
    let n = 1_000_000usize;
    let domains: Vec<u16> = (0..n).map(|i| ((i as u64).wrapping_mul(0x9E3779B97F4A7C15) >> 62) as u16).collect();
    let mut g = c.benchmark_group("loader");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("plan_1m_positions_4_domains", |b| {
        let mut plan = vec![0u64; n];
        b.iter(|| {
            let mut p = Planner::new(4);
            p.set_mixture(&domains, vec![0.4, 0.3, 0.2, 0.1]);
            p.extend(&domains, &mut plan, n as u64);
            black_box(plan[n - 1])
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("dump_decision", |b| {
        b.iter(|| black_box(dump_mixture(&[0.5, 0.3, 0.2, 0.1], &[100, 100, 50, 10], 0.1)))
    });
    g.finish();
}

criterion_group!(
    benches, source, featurize, dsir, select, zipfit, kmeans, classifier, dedup, curriculum, proxy, eval, mix, loader
);
criterion_main!(benches);
