//! Scale benchmark of the nearest-neighbour index (issue 4): build time, memory, single-thread
//! top-10 query latency and recall@10 against an exact f32 computation.
//!
//! ```text
//! cargo bench --bench index_scale -- [--n 1000000] [--data uniform|faces|lfw-like|both]
//!     [--storage f16|f32|i8] [--m 16] [--ef-construction 128] [--ef 64[,128,...]] [--queries 1000]
//!     [--truth-queries 200] [--knn] [--crossover] [--serial] [--seed 42]
//!     [--save FILE | --load FILE] [--vectors FILE] [--lfw DIR] [--gallery DIR]
//! ```
//!
//! `--gallery DIR` measures the gallery rather than the bare index: when DIR holds no gallery,
//! it creates one with `--storage` as its index storage and enrolls the `--n` generated vectors
//! (10 faces per identity, synthetic model id) in batches of 1,000; then it reports memory and
//! single-thread `Gallery::identify` latency (top 5, default search; max scoring, which searches
//! the faces, then mean scoring, which builds and searches the identity templates) and how often
//! the probe's own identity ranks first, against the exact path. Run it a second time on the same
//! DIR to measure a gallery opened from disk (its saved index loaded, not rebuilt).
//!
//! `--storage i8` keeps 1-byte codes in the index and rescores candidates from exact vectors
//! outside it, as a gallery does from its store: here an f32 file (`--vectors FILE`, default the
//! index file's path + `.f32`, or one in the temporary folder) read with positioned reads; it is
//! written from the seeded generator when missing or of the wrong size. Its pages sit in the
//! kernel's page cache (shared, evictable), not in the process's resident memory reported here.
//!
//! `--save FILE` writes the built index (one `--data` only) with [`VectorIndex::save`];
//! `--load FILE` skips the build and measures queries on a saved index, so a slow build can run
//! while the machine is busy and the latencies be taken later on an idle one. The file's tag
//! records the data, n and seed, and a mismatch with the arguments is refused.
//!
//! Data (seeded, generated in chunks of 10,000 so the f32 originals are never all in memory):
//! * `uniform`: i.i.d. N(0, I₅₁₂) vectors, L2-normalized (uniform on the sphere; the hardest case,
//!   neighbours barely closer than anything else). Queries are fresh vectors from the same law.
//! * `faces`: identities of 10 samples each; an identity centre c is uniform on the sphere, a
//!   sample is normalize(c + σ·z) with z ~ N(0, I/512) and σ = 0.8, so two samples of one identity
//!   have cosine ≈ 1/(1+σ²) ≈ 0.61 and different identities ≈ 0. Queries are fresh samples of
//!   stored identities (probes).
//! * `lfw-like`: the same layout (10 samples per identity, probes of stored identities), drawn
//!   from a Gaussian model of real embeddings fitted on LFW ([`fit_lfw`]; `--lfw DIR`, default
//!   `../shared/data/lfw/lfw_funneled`, embedded with the default models through the embedding
//!   cache): centre = mean + N(0, Σb), sample = normalize(centre + a·N(0, Σw)) with a² ~ Gamma(2,
//!   1/2). Uniform centres (`faces`) are a worst case that real embeddings are far from: LFW's
//!   between-identity variance is spread over an effective dimension of about 158, not 512
//!   (printed by the fit, with the model's and LFW's same-/different-identity cosine statistics).
//!
//! Recall@10 = |approximate top 10 ∩ exact top 10| / 10, averaged over `--truth-queries` queries,
//! exact = brute force in f32 over the regenerated original vectors (not the stored f16 ones).
//! Memory: VmHWM (peak) and VmRSS from /proc/self/status after building. Runs one process; the
//! vectors are generated and inserted chunk by chunk, one insert at a time (see `add_batch`).
//! Times are wall clock and, where the machine is shared, CPU time (getrusage) beside them.

use std::time::Instant;

use faceprint::index::{ExactVectors, IndexParams, SearchMode, VectorIndex, VectorStorage};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

const DIM: usize = 512;
const CHUNK: usize = 10_000;
const PER_IDENTITY: usize = 10;
const SIGMA: f32 = 0.8;
/// Neighbours at least this similar are the ones an identification can accept: 0.3765 is the
/// default model's calibrated threshold at FAR 2e-6 (calibration/w600k_mbf-*.json), the
/// loosest a gallery of a million faces would use. Recall is also reported for these alone.
const STRONG_SIMILARITY: f32 = 0.3765;

#[derive(Clone, Copy, PartialEq)]
enum Data {
    Uniform,
    Faces,
    LfwLike,
}

impl Data {
    fn name(self) -> &'static str {
        match self {
            Data::Uniform => "uniform",
            Data::Faces => "faces",
            Data::LfwLike => "lfw-like",
        }
    }
}

/// Gaussian model of real embeddings, fitted on LFW (see [`fit_lfw`]): an identity centre is
/// `mean + z·between`, a sample `normalize(centre + z'·within)`, z, z' ~ N(0, I₅₁₂) as rows.
struct Fitted {
    mean: Vec<f32>,
    /// Transposed square root of the between-identity covariance, [512, 512].
    between: ndarray::Array2<f32>,
    /// Transposed square root of the within-identity covariance, [512, 512].
    within: ndarray::Array2<f32>,
}

/// Real photos differ in quality, so their distance to the identity's centre varies: each
/// sample's within-identity part is scaled by a, a² ~ Gamma(k, 1/k) (mean 1, so Σw is kept).
/// k = 2 brings the model's same-identity cosine spread near LFW's (printed by [`fit_lfw`]).
const WITHIN_SHAPE: f32 = 2.0;

static FIT: std::sync::OnceLock<Fitted> = std::sync::OnceLock::new();

fn fitted() -> &'static Fitted {
    FIT.get().expect("the LFW model is fitted before any lfw-like vector is generated")
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

fn gaussian(rng: &mut impl Rng, out: &mut [f32], scale: f32) {
    for x in out.iter_mut() {
        let g: f32 = rng.sample(StandardNormal);
        *x = g * scale;
    }
}

fn identity_centre(seed: u64, id: usize) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xC3A5_C85C_97CB_3127 ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut c = vec![0f32; DIM];
    gaussian(&mut rng, &mut c, 1.0);
    normalize(&mut c);
    c
}

/// Vectors `start..start+len` of the stored set (one chunk), row-major.
fn chunk(data: Data, seed: u64, index: usize, n: usize) -> Vec<f32> {
    let start = index * CHUNK;
    let len = CHUNK.min(n - start);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(index as u64 * 7919));
    if data == Data::LfwLike {
        let ids: Vec<usize> = (start..start + len).map(|i| i / PER_IDENTITY).collect();
        return lfw_like(seed, &ids, &mut rng);
    }
    let mut out = vec![0f32; len * DIM];
    let mut centre: Option<(usize, Vec<f32>)> = None;
    for (j, v) in out.chunks_exact_mut(DIM).enumerate() {
        match data {
            Data::Uniform | Data::LfwLike => gaussian(&mut rng, v, 1.0),
            Data::Faces => {
                let id = (start + j) / PER_IDENTITY;
                if centre.as_ref().map(|c| c.0) != Some(id) {
                    centre = Some((id, identity_centre(seed, id)));
                }
                gaussian(&mut rng, v, SIGMA / (DIM as f32).sqrt());
                if let Some((_, c)) = &centre {
                    v.iter_mut().zip(c).for_each(|(x, c)| *x += c);
                }
            }
        }
        normalize(v);
    }
    out
}

fn queries(data: Data, seed: u64, count: usize, n: usize) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5151_5151);
    if data == Data::LfwLike {
        let ids: Vec<usize> = (0..count).map(|_| rng.random_range(0..n.div_ceil(PER_IDENTITY))).collect();
        return lfw_like(seed, &ids, &mut rng);
    }
    let mut out = vec![0f32; count * DIM];
    for v in out.chunks_exact_mut(DIM) {
        match data {
            Data::Uniform | Data::LfwLike => gaussian(&mut rng, v, 1.0),
            Data::Faces => {
                let ids = n.div_ceil(PER_IDENTITY);
                let c = identity_centre(seed, rng.random_range(0..ids));
                gaussian(&mut rng, v, SIGMA / (DIM as f32).sqrt());
                v.iter_mut().zip(&c).for_each(|(x, c)| *x += c);
            }
        }
        normalize(v);
    }
    out
}

/// Samples of the LFW-fitted model, one row per entry of `ids` (identity numbers): the centre of
/// identity `id` is seeded by `id` alone, so every sample of one identity shares it, in the
/// stored set and in the probes; the within-identity part comes from `rng`.
fn lfw_like(seed: u64, ids: &[usize], rng: &mut impl Rng) -> Vec<f32> {
    let f = fitted();
    let mut zc = ndarray::Array2::<f32>::zeros((ids.len(), DIM));
    let mut last: Option<(usize, usize)> = None;
    for (r, &id) in ids.iter().enumerate() {
        match last {
            Some((prev, row)) if prev == id => {
                let copy = zc.row(row).to_owned();
                zc.row_mut(r).assign(&copy);
            }
            _ => {
                let mut crng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1F1F_2E2E ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                for x in zc.row_mut(r).iter_mut() {
                    *x = crng.sample(StandardNormal);
                }
                last = Some((id, r));
            }
        }
    }
    let mut zw = ndarray::Array2::<f32>::zeros((ids.len(), DIM));
    let scale = rand_distr::Gamma::new(WITHIN_SHAPE, 1.0 / WITHIN_SHAPE).expect("gamma");
    for mut row in zw.rows_mut() {
        let a = rng.sample(scale).sqrt();
        row.iter_mut().for_each(|x| *x = a * rng.sample::<f32, _>(StandardNormal));
    }
    let mut out = zc.dot(&f.between) + zw.dot(&f.within);
    for mut row in out.rows_mut() {
        row.iter_mut().zip(&f.mean).for_each(|(x, m)| *x += m);
        normalize(row.as_slice_mut().expect("standard layout"));
    }
    out.into_raw_vec_and_offset().0
}

/// Eigen-decomposition of a symmetric n×n matrix (row-major, f64) by cyclic Jacobi rotations:
/// (eigenvalues, eigenvectors as the columns of an n×n row-major matrix).
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..50 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j] * a[i * n + j]).sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= 1e-22 * diag {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Transposed square root of a covariance (negative eigenvalues, from estimation noise, set to
/// 0), so that rows z·R with z ~ N(0, I) have that covariance; also its eigenvalues, descending.
fn covariance_root(cov: Vec<f64>) -> (ndarray::Array2<f32>, Vec<f64>) {
    let (vals, vecs) = symmetric_eigen(cov, DIM);
    let mut r = ndarray::Array2::<f32>::zeros((DIM, DIM));
    for k in 0..DIM {
        let s = vals[k].max(0.0).sqrt();
        for i in 0..DIM {
            r[[k, i]] = (vecs[i * DIM + k] * s) as f32;
        }
    }
    let mut sorted = vals;
    sorted.sort_by(|a, b| b.total_cmp(a));
    (r, sorted)
}

/// Cosine statistics of same-identity and different-identity pairs: (mean, std) of each.
fn pair_stats(groups: &[Vec<Vec<f32>>], rng: &mut impl Rng) -> ((f64, f64), (f64, f64)) {
    let ms = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        (m, (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt())
    };
    let mut genuine = Vec::new();
    for g in groups {
        for i in 0..g.len() {
            for j in i + 1..g.len() {
                genuine.push(faceprint::compare::dot(&g[i], &g[j]) as f64);
            }
        }
    }
    let mut impostor = Vec::new();
    while impostor.len() < 100_000 {
        let (a, b) = (rng.random_range(0..groups.len()), rng.random_range(0..groups.len()));
        if a != b {
            impostor.push(faceprint::compare::dot(&groups[a][0], &groups[b][0]) as f64);
        }
    }
    (ms(&genuine), ms(&impostor))
}

/// Fits the `lfw-like` model on the embeddings of the LFW photos under `root` (one folder per
/// identity; the default pipeline, through the embedding cache): the mean embedding, the
/// pooled within-identity covariance Σw (identities with ≥ 2 photos, residuals scaled by
/// √(n/(n−1))) and the between-identity covariance Σb = cov(identity means) − mean(1/n)·Σw.
/// Prints the fit and the same-/different-identity cosine statistics of LFW and of the model.
fn fit_lfw(root: &std::path::Path) {
    use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer};
    let t = Instant::now();
    let data = faceprint::models::data_dir(None);
    let analyzer = FaceAnalyzer::load(AnalyzerConfig {
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cache: Some(faceprint::cache::EmbeddingCache::default_path(&data)),
        ..Default::default()
    })
    .expect("the default models (faceprint models install)");
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e} (--lfw DIR: LFW's folder of identity folders)", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut images: Vec<(usize, std::path::PathBuf)> = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(d).expect("identity folder").filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        images.extend(files.into_iter().map(|f| (i, f)));
    }
    let paths: Vec<_> = images.iter().map(|i| i.1.clone()).collect();
    let (outcomes, _) = faceprint::eval::embed_pair_images(&analyzer, &paths, None, |_, _| {});
    let mut groups: Vec<Vec<Vec<f32>>> = vec![Vec::new(); dirs.len()];
    for (i, p) in &images {
        if let Some(e) = outcomes.get(p).and_then(|o| o.embedding.clone()) {
            groups[*i].push(e);
        }
    }
    groups.retain(|g| !g.is_empty());
    let all: Vec<&Vec<f32>> = groups.iter().flatten().collect();
    let mut mean = vec![0f64; DIM];
    all.iter().for_each(|e| e.iter().zip(&mut mean).for_each(|(x, m)| *m += *x as f64 / all.len() as f64));
    let multi: Vec<&Vec<Vec<f32>>> = groups.iter().filter(|g| g.len() >= 2).collect();
    let mut within = vec![0f64; DIM * DIM];
    let mut residuals = 0usize;
    let mut means: Vec<Vec<f64>> = Vec::new();
    let mut inv_n = 0f64;
    for g in &multi {
        let n = g.len() as f64;
        let mut m = vec![0f64; DIM];
        g.iter().for_each(|e| e.iter().zip(&mut m).for_each(|(x, m)| *m += *x as f64 / n));
        for e in g.iter() {
            let r: Vec<f64> = e.iter().zip(&m).map(|(x, m)| (*x as f64 - m) * (n / (n - 1.0)).sqrt()).collect();
            for i in 0..DIM {
                for j in 0..DIM {
                    within[i * DIM + j] += r[i] * r[j];
                }
            }
            residuals += 1;
        }
        inv_n += 1.0 / n;
        means.push(m);
    }
    within.iter_mut().for_each(|x| *x /= residuals as f64);
    inv_n /= multi.len() as f64;
    let mut mm = vec![0f64; DIM];
    means.iter().for_each(|m| m.iter().zip(&mut mm).for_each(|(x, s)| *s += x / means.len() as f64));
    let mut between = vec![0f64; DIM * DIM];
    for m in &means {
        let d: Vec<f64> = m.iter().zip(&mm).map(|(x, s)| x - s).collect();
        for i in 0..DIM {
            for j in 0..DIM {
                between[i * DIM + j] += d[i] * d[j] / (means.len() as f64 - 1.0);
            }
        }
    }
    between.iter_mut().zip(&within).for_each(|(b, w)| *b -= inv_n * w);
    let (w_root, w_vals) = covariance_root(within);
    let (b_root, b_vals) = covariance_root(between);
    let share = |v: &[f64], k: usize| v.iter().take(k).map(|x| x.max(0.0)).sum::<f64>() / v.iter().map(|x| x.max(0.0)).sum::<f64>();
    let participation = |v: &[f64]| {
        let p: Vec<f64> = v.iter().map(|x| x.max(0.0)).collect();
        p.iter().sum::<f64>().powi(2) / p.iter().map(|x| x * x).sum::<f64>()
    };
    println!(
        "lfw-like model fitted on {} embeddings of {} identities ({} with ≥ 2 photos) from {} in {:.1} s: |mean| {:.3}, trace Σb {:.3}, Σw {:.3}",
        all.len(),
        groups.len(),
        multi.len(),
        root.display(),
        t.elapsed().as_secs_f64(),
        mean.iter().map(|x| x * x).sum::<f64>().sqrt(),
        b_vals.iter().map(|x| x.max(0.0)).sum::<f64>(),
        w_vals.iter().map(|x| x.max(0.0)).sum::<f64>(),
    );
    println!(
        "  variance in the top 10 / 50 / 100 directions: between {:.2} / {:.2} / {:.2}, within {:.2} / {:.2} / {:.2}; participation ratio (effective dimension) between {:.0}, within {:.0}",
        share(&b_vals, 10),
        share(&b_vals, 50),
        share(&b_vals, 100),
        share(&w_vals, 10),
        share(&w_vals, 50),
        share(&w_vals, 100),
        participation(&b_vals),
        participation(&w_vals)
    );
    FIT.set(Fitted { mean: mean.iter().map(|x| *x as f32).collect(), between: b_root, within: w_root }).ok().expect("fitted once");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ((gm, gs), (im, is)) = pair_stats(&groups, &mut rng);
    println!("  LFW cosine: same identity {gm:.3} ± {gs:.3}, different identities {im:.3} ± {is:.3}");
    let ids: Vec<usize> = (0..20_000).map(|i| 1_000_000_000 + i / 4).collect();
    let synth = lfw_like(99, &ids, &mut rng);
    let sgroups: Vec<Vec<Vec<f32>>> = synth.chunks_exact(4 * DIM).map(|g| g.chunks_exact(DIM).map(|v| v.to_vec()).collect()).collect();
    let ((gm, gs), (im, is)) = pair_stats(&sgroups, &mut rng);
    println!("  model cosine: same identity {gm:.3} ± {gs:.3}, different identities {im:.3} ± {is:.3}");
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string()))
        .map(|kb| format!("{:.0} MiB", kb.parse::<f64>().unwrap_or(f64::NAN) / 1024.0))
        .unwrap_or_else(|| "?".into())
}

/// Exact f32 top-k (key, similarity) of each truth query, regenerating the stored vectors chunk
/// by chunk from their f32 originals.
fn exact_truth(data: Data, seed: u64, n: usize, qs: &[f32], k: usize) -> Vec<Vec<(u64, f32)>> {
    let nq = qs.len() / DIM;
    let mut best: Vec<Vec<(f32, u64)>> = vec![Vec::new(); nq];
    let chunks = n.div_ceil(CHUNK);
    for c in 0..chunks {
        let vs = chunk(data, seed, c, n);
        std::thread::scope(|s| {
            let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
            let per = nq.div_ceil(threads);
            for (t, rows) in best.chunks_mut(per).enumerate() {
                let vs = &vs;
                s.spawn(move || {
                    for (r, top) in rows.iter_mut().enumerate() {
                        let q = &qs[(t * per + r) * DIM..(t * per + r + 1) * DIM];
                        for (j, v) in vs.chunks_exact(DIM).enumerate() {
                            let sim = faceprint::compare::dot(q, v);
                            top.push((sim, (c * CHUNK + j) as u64));
                        }
                        top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                        top.truncate(k);
                    }
                });
            }
        });
    }
    best.into_iter().map(|t| t.into_iter().map(|(sim, key)| (key, sim)).collect()).collect()
}

/// CPU seconds (user + system) this process has used so far: with other jobs on the machine,
/// wall time overstates the cost, CPU time does not.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Args {
    n: usize,
    data: Vec<Data>,
    storage: VectorStorage,
    m: usize,
    ef_construction: usize,
    ef: Vec<usize>,
    queries: usize,
    truth_queries: usize,
    knn: bool,
    crossover: bool,
    serial: bool,
    seed: u64,
    save: Option<std::path::PathBuf>,
    load: Option<std::path::PathBuf>,
    lfw: std::path::PathBuf,
    raw: Option<usearch::ScalarKind>,
    vectors: Option<std::path::PathBuf>,
    gallery: Option<std::path::PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        n: 1_000_000,
        data: vec![Data::Uniform, Data::Faces],
        storage: VectorStorage::F16,
        m: IndexParams::default().connectivity,
        ef_construction: IndexParams::default().ef_construction,
        ef: vec![IndexParams::default().ef_search],
        queries: 1000,
        truth_queries: 200,
        knn: false,
        crossover: false,
        serial: false,
        seed: 42,
        save: None,
        load: None,
        lfw: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lfw/lfw_funneled"),
        raw: None,
        vectors: None,
        gallery: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |s: String| s.replace('_', "").parse::<usize>().map_err(|e| format!("{s}: {e}"));
        match flag.as_str() {
            "--n" => a.n = num(val()?)?,
            "--data" => {
                a.data = match val()?.as_str() {
                    "uniform" => vec![Data::Uniform],
                    "faces" => vec![Data::Faces],
                    "lfw-like" => vec![Data::LfwLike],
                    "both" => vec![Data::Uniform, Data::Faces],
                    o => return Err(format!("--data {o}: expected uniform, faces, lfw-like or both")),
                }
            }
            "--storage" => {
                a.storage = match val()?.as_str() {
                    "f16" => VectorStorage::F16,
                    "f32" => VectorStorage::F32,
                    "i8" => VectorStorage::I8,
                    o => return Err(format!("--storage {o}: expected f16, f32 or i8")),
                }
            }
            "--m" => a.m = num(val()?)?,
            "--ef-construction" => a.ef_construction = num(val()?)?,
            "--ef" => a.ef = val()?.split(',').map(|s| num(s.to_string())).collect::<Result<_, _>>()?,
            "--queries" => a.queries = num(val()?)?,
            "--truth-queries" => a.truth_queries = num(val()?)?,
            "--seed" => a.seed = num(val()?)? as u64,
            "--knn" => a.knn = true,
            "--crossover" => a.crossover = true,
            "--serial" => a.serial = true,
            "--save" => a.save = Some(val()?.into()),
            "--load" => a.load = Some(val()?.into()),
            "--lfw" => a.lfw = val()?.into(),
            "--vectors" => a.vectors = Some(val()?.into()),
            "--gallery" => a.gallery = Some(val()?.into()),
            "--raw" => {
                a.raw = Some(match val()?.as_str() {
                    "f16" => usearch::ScalarKind::F16,
                    "i8" => usearch::ScalarKind::I8,
                    o => return Err(format!("--raw {o}: expected f16 or i8")),
                })
            }
            "--bench" => {} // passed by `cargo bench`
            o => return Err(format!("unknown argument {o}")),
        }
    }
    if a.n == 0 || a.ef.is_empty() {
        return Err("--n and --ef must be positive".into());
    }
    if (a.save.is_some() || a.load.is_some()) && a.data.len() != 1 {
        return Err("--save and --load need one --data (faces, uniform or lfw-like)".into());
    }
    Ok(a)
}

fn time_queries(index: &VectorIndex, qs: &[f32], mode: SearchMode) -> Vec<f64> {
    time_each(qs, |q| std::hint::black_box(index.search(q, 10, mode).expect("search")).len())
}

/// Milliseconds taken by `search` on each query row of `qs`, sorted.
fn time_each<R>(qs: &[f32], search: impl Fn(&[f32]) -> R) -> Vec<f64> {
    let mut ms: Vec<f64> = qs
        .chunks_exact(DIM)
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(search(q));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn crossover(a: &Args) {
    println!("crossover: single-thread top-10 latency, exact vs approximate, {} storage, uniform data", format!("{:?}", a.storage));
    println!("{:>8} {:>12} {:>12} {:>10}", "n", "exact p50", "approx p50", "recall@10");
    let params = IndexParams { connectivity: a.m, ef_construction: a.ef_construction, ef_search: a.ef[0], storage: a.storage, ..Default::default() };
    let mut index = VectorIndex::new(DIM, params).expect("index");
    let qs = queries(Data::Uniform, a.seed, 200, a.n);
    let mut added = 0;
    for &n in &[1_000usize, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000] {
        if n > a.n {
            break;
        }
        while added < n {
            let c = added / CHUNK;
            let vs = chunk(Data::Uniform, a.seed, c, a.n);
            let take = (n - added).min(vs.len() / DIM - (added - c * CHUNK));
            let from = added - c * CHUNK;
            let keys: Vec<u64> = (added..added + take).map(|k| k as u64).collect();
            index.add_batch(&keys, &vs[from * DIM..(from + take) * DIM]).expect("add");
            added += take;
        }
        let e = time_queries(&index, &qs, SearchMode::Exact);
        let h = time_queries(&index, &qs, SearchMode::Approximate);
        let mut hit = 0usize;
        for q in qs.chunks_exact(DIM) {
            let ex = index.search(q, 10, SearchMode::Exact).expect("search");
            let ap = index.search(q, 10, SearchMode::Approximate).expect("search");
            hit += ap.iter().filter(|x| ex.iter().any(|y| y.key == x.key)).count();
        }
        println!("{:>8} {:>9.3} ms {:>9.3} ms {:>10.4}", n, percentile(&e, 0.5), percentile(&h, 0.5), hit as f64 / (10.0 * 200.0));
    }
}

fn run(a: &Args, data: Data) {
    let params = IndexParams { connectivity: a.m, ef_construction: a.ef_construction, ef_search: a.ef[0], storage: a.storage, ..Default::default() };
    println!(
        "== {} data, n = {}, dim = {DIM}, storage {:?}, M = {}, ef_construction = {}, serial inserts",
        data.name(),
        a.n,
        a.storage,
        a.m,
        a.ef_construction,
    );
    let tag = format!("index_scale data={} n={} seed={}", data.name(), a.n, a.seed);
    let source = (a.storage == VectorStorage::I8).then(|| vectors_file(a, data));
    let mut index = match &a.load {
        Some(path) => {
            let t = Instant::now();
            let (index, got) = VectorIndex::load(path, params).expect("loading the saved index");
            if got != tag {
                eprintln!("index_scale: {} holds \"{got}\", not \"{tag}\"", path.display());
                std::process::exit(2);
            }
            let mut index = index;
            if let Some(s) = &source {
                index.set_exact_source(s.clone());
            }
            println!("loaded {} vectors from {} in {:.1} s", index.len(), path.display(), t.elapsed().as_secs_f64());
            println!("memory: VmHWM {}, VmRSS {}, engine reports {:.0} MB", proc_status("VmHWM:"), proc_status("VmRSS:"), index.memory_usage() as f64 / 1e6);
            index
        }
        None => build(a, data, params, source),
    };
    if let Some(path) = &a.save {
        let t = Instant::now();
        index.save(path, &tag).expect("saving the index");
        println!("saved to {} in {:.1} s", path.display(), t.elapsed().as_secs_f64());
    }
    measure(a, data, &mut index);
}

/// Builds the index from the generated vectors, printing build time and memory.
fn build(a: &Args, data: Data, params: IndexParams, source: Option<std::sync::Arc<FileVectors>>) -> VectorIndex {
    let mut index = VectorIndex::new(DIM, params).expect("index");
    if let Some(s) = source {
        index.set_exact_source(s);
    }
    index.reserve(a.n).expect("reserve");
    let t = Instant::now();
    let cpu0 = cpu_seconds();
    let mut gen_secs = 0.0;
    for c in 0..a.n.div_ceil(CHUNK) {
        let g = Instant::now();
        let vs = chunk(data, a.seed, c, a.n);
        gen_secs += g.elapsed().as_secs_f64();
        let keys: Vec<u64> = (0..vs.len() / DIM).map(|j| (c * CHUNK + j) as u64).collect();
        if a.serial {
            for (k, v) in keys.iter().zip(vs.chunks_exact(DIM)) {
                index.add(*k, v).expect("add");
            }
        } else {
            index.add_batch(&keys, &vs).expect("add");
        }
        if c % 10 == 9 {
            eprintln!("  {} / {} added, {:.0} s", index.len(), a.n, t.elapsed().as_secs_f64());
        }
    }
    let build = t.elapsed().as_secs_f64() - gen_secs;
    let build_cpu = cpu_seconds() - cpu0 - gen_secs;
    println!("build: {build:.1} s wall, ≈ {build_cpu:.1} s CPU (excluding ≈ {gen_secs:.1} s generating vectors)");
    println!("memory: VmHWM {}, VmRSS {}, engine reports {:.0} MB", proc_status("VmHWM:"), proc_status("VmRSS:"), index.memory_usage() as f64 / 1e6);
    index
}

/// Exact vectors for i8 rescoring: row `key` of a file of f32 rows (keys are 0..n in order).
struct FileVectors {
    file: std::fs::File,
    rows: u64,
}

impl ExactVectors for FileVectors {
    fn read(&self, key: u64, out: &mut [f32]) -> Result<bool, String> {
        use std::os::unix::fs::FileExt;
        if key >= self.rows {
            return Ok(false);
        }
        let mut buf = [0u8; DIM * 4];
        self.file.read_exact_at(&mut buf, key * (DIM as u64) * 4).map_err(|e| e.to_string())?;
        for (o, b) in out.iter_mut().zip(buf.chunks_exact(4)) {
            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(true)
    }
}

/// The f32 vectors file for `--storage i8` (see the module docs), written when missing or of
/// the wrong size.
fn vectors_file(a: &Args, data: Data) -> std::sync::Arc<FileVectors> {
    let path = a.vectors.clone().unwrap_or_else(|| match a.save.as_ref().or(a.load.as_ref()) {
        Some(p) => std::path::PathBuf::from(format!("{}.f32", p.display())),
        None => std::env::temp_dir().join(format!("index_scale-{}-{}-{}.f32", data.name(), a.n, a.seed)),
    });
    let bytes = (a.n * DIM * 4) as u64;
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes) {
        let t = Instant::now();
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("creating the vectors file"));
        for c in 0..a.n.div_ceil(CHUNK) {
            let vs = chunk(data, a.seed, c, a.n);
            let raw: Vec<u8> = vs.iter().flat_map(|x| x.to_le_bytes()).collect();
            std::io::Write::write_all(&mut w, &raw).expect("writing the vectors file");
        }
        std::io::Write::flush(&mut w).expect("writing the vectors file");
        println!("wrote the exact vectors ({:.0} MB) to {} in {:.1} s", bytes as f64 / 1e6, path.display(), t.elapsed().as_secs_f64());
    }
    println!("i8 rescoring reads exact vectors from {}", path.display());
    let source = FileVectors { file: std::fs::File::open(&path).expect("opening the vectors file"), rows: a.n as u64 };
    // A file of the right size from other data or another seed would rescore wrongly.
    let last = a.n.div_ceil(CHUNK) - 1;
    let expected = chunk(data, a.seed, last, a.n);
    let mut row = vec![0f32; DIM];
    source.read((last * CHUNK) as u64, &mut row).expect("reading the vectors file");
    if row[..] != expected[..DIM] {
        eprintln!("index_scale: {} holds other vectors than --data {} --n {} --seed {}", path.display(), data.name(), a.n, a.seed);
        std::process::exit(2);
    }
    std::sync::Arc::new(source)
}

/// Latency and recall of the built index.
fn measure(a: &Args, data: Data, index: &mut VectorIndex) {
    let qs = queries(data, a.seed, a.queries.max(a.truth_queries), a.n);
    let tq = &qs[..a.truth_queries * DIM];
    let t = Instant::now();
    let truth = exact_truth(data, a.seed, a.n, tq, 10);
    println!("exact f32 truth for {} queries: {:.1} s", a.truth_queries, t.elapsed().as_secs_f64());
    let ex = time_queries(index, &qs[..20.min(a.queries) * DIM], SearchMode::Exact);
    println!("index exact path (brute force over stored vectors): p50 {:.2} ms over {} queries", percentile(&ex, 0.5), ex.len());
    let check = 20.min(truth.len());
    let mut exact_hits = 0;
    for (q, t) in tq.chunks_exact(DIM).zip(&truth).take(check) {
        let got = index.search(q, 10, SearchMode::Exact).expect("search");
        exact_hits += got.iter().filter(|g| t.iter().any(|x| x.0 == g.key)).count();
    }
    println!("index exact path recall@10 against the f32 truth: {:.4} ({check} queries)", exact_hits as f64 / (10.0 * check as f64));
    for &ef in &a.ef {
        index.set_ef_search(ef).expect("ef");
        let lat = time_queries(index, &qs[..a.queries * DIM], SearchMode::Approximate);
        let mut hit = 0usize;
        let mut max_err = 0f64;
        // Which true neighbours are missed: how similar they were to the query, and how many
        // queries lost any.
        let (mut perfect, mut missed_strong, mut strong) = (0usize, 0usize, 0usize);
        let mut missed_sims: Vec<f32> = Vec::new();
        for (q, t) in tq.chunks_exact(DIM).zip(&truth) {
            let got = index.search(q, 10, SearchMode::Approximate).expect("search");
            let mut found = 0;
            for g in &got {
                if let Some(&(_, sim)) = t.iter().find(|x| x.0 == g.key) {
                    hit += 1;
                    found += 1;
                    max_err = max_err.max((sim as f64 - g.similarity as f64).abs());
                }
            }
            perfect += usize::from(found == t.len());
            for &(key, sim) in t {
                let is_strong = sim >= STRONG_SIMILARITY;
                strong += usize::from(is_strong);
                if !got.iter().any(|g| g.key == key) {
                    missed_sims.push(sim);
                    missed_strong += usize::from(is_strong);
                }
            }
        }
        missed_sims.sort_by(f32::total_cmp);
        println!(
            "ef_search {ef:>4}: top-10 latency 1 thread p50 {:.3} ms, p99 {:.3} ms ({} queries); recall@10 {:.4} ({} queries); max |reported − f32 similarity| {:.2e}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.len(),
            hit as f64 / (10.0 * truth.len() as f64),
            truth.len(),
            max_err
        );
        println!(
            "    {perfect} of {} queries found all 10; missed neighbours' similarity to the query: median {:.3}, max {:.3}; recall of neighbours with similarity ≥ {STRONG_SIMILARITY}: {:.4} ({} of {strong} missed)",
            truth.len(),
            missed_sims.get(missed_sims.len() / 2).copied().unwrap_or(f32::NAN),
            missed_sims.last().copied().unwrap_or(f32::NAN),
            1.0 - missed_strong as f64 / strong.max(1) as f64,
            missed_strong
        );
    }
    if a.knn {
        index.set_ef_search(a.ef[0]).expect("ef");
        let t = Instant::now();
        let c = cpu_seconds();
        let g = index.knn_graph(10, SearchMode::Auto).expect("knn");
        println!(
            "knn_graph(10, Auto) over {} vectors: {:.1} s wall, {:.1} s CPU on {} threads ({} rows)",
            index.len(),
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c,
            std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1),
            g.len()
        );
    }
}

/// `--raw f16|i8`: the usearch engine alone (cosine metric, no rescoring, no faceprint index
/// around it), to see what i8 storage would change: build, memory, latency and recall@10 of the
/// engine's own top 10 against the f32 truth. Exploration for the index's storage choice.
fn raw(a: &Args, data: Data, kind: usearch::ScalarKind) {
    let options = usearch::IndexOptions {
        dimensions: DIM,
        metric: usearch::MetricKind::Cos,
        quantization: kind,
        connectivity: a.m,
        expansion_add: a.ef_construction,
        expansion_search: a.ef[0],
        multi: false,
    };
    println!("== raw usearch engine, {kind:?} storage, {} data, n = {}, M = {}, ef_construction = {}", data.name(), a.n, a.m, a.ef_construction);
    let index = usearch::Index::new(&options).expect("index");
    index.reserve(a.n).expect("reserve");
    let (t, cpu0) = (Instant::now(), cpu_seconds());
    let mut gen_secs = 0.0;
    for c in 0..a.n.div_ceil(CHUNK) {
        let g = Instant::now();
        let vs = chunk(data, a.seed, c, a.n);
        gen_secs += g.elapsed().as_secs_f64();
        for (j, v) in vs.chunks_exact(DIM).enumerate() {
            index.add((c * CHUNK + j) as u64, v).expect("add");
        }
    }
    println!(
        "build: {:.1} s wall, ≈ {:.1} s CPU; memory: VmHWM {}, VmRSS {}, engine reports {:.0} MB",
        t.elapsed().as_secs_f64() - gen_secs,
        cpu_seconds() - cpu0 - gen_secs,
        proc_status("VmHWM:"),
        proc_status("VmRSS:"),
        index.memory_usage() as f64 / 1e6
    );
    let qs = queries(data, a.seed, a.queries.max(a.truth_queries), a.n);
    let tq = &qs[..a.truth_queries * DIM];
    let truth = exact_truth(data, a.seed, a.n, tq, 10);
    for &ef in &a.ef {
        index.change_expansion_search(ef);
        let ms = time_each(&qs[..a.queries * DIM], |q| index.search(q, 10).expect("search"));
        let mut hit = 0usize;
        for (q, t) in tq.chunks_exact(DIM).zip(&truth) {
            let got = index.search(q, 10).expect("search");
            hit += got.keys.iter().filter(|k| t.iter().any(|x| x.0 == **k)).count();
        }
        println!(
            "ef_search {ef:>4}: p50 {:.3} ms, p99 {:.3} ms ({} queries); recall@10 {:.4} ({} queries)",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.len(),
            hit as f64 / (10.0 * truth.len() as f64),
            truth.len()
        );
    }
}

/// `--gallery DIR`: see the module docs.
fn gallery(a: &Args, data: Data, dir: &std::path::Path) {
    use faceprint::compare::Threshold;
    use faceprint::embed::{Embedding, ModelId};
    use faceprint::gallery::{Gallery, GalleryOptions, IdentifyParams, NewFace, Scoring};
    let model = ModelId(format!("synthetic-{}-{}-{}", data.name(), a.n, a.seed));
    println!("memory before the gallery (the fitted model, the runtime): VmRSS {}", proc_status("VmRSS:"));
    let t = Instant::now();
    let g = if dir.join(faceprint::gallery::STORE_FILE).exists() {
        let g = Gallery::open(dir, GalleryOptions::default()).expect("opening the gallery");
        println!(
            "== gallery {} opened in {:.1} s: {} faces, {} index {}",
            dir.display(),
            t.elapsed().as_secs_f64(),
            g.len(),
            g.meta().expect("meta").index_storage,
            g.index_origin()
        );
        assert_eq!(g.model_id(), &model, "the gallery holds other data than --data/--n/--seed");
        g
    } else {
        let options = GalleryOptions { index: IndexParams { storage: a.storage, connectivity: a.m, ef_construction: a.ef_construction, ..Default::default() }, ..Default::default() };
        let g = Gallery::create(dir, &model, DIM, options).expect("creating the gallery");
        let ids = g.add_identities((0..a.n.div_ceil(PER_IDENTITY)).map(|i| (format!("p{i}"), serde_json::Value::Null)).collect()).expect("identities");
        let cpu0 = cpu_seconds();
        for c in 0..a.n.div_ceil(CHUNK) {
            let vs = chunk(data, a.seed, c, a.n);
            let rows: Vec<(i64, NewFace)> = vs
                .chunks_exact(DIM)
                .enumerate()
                .map(|(j, v)| {
                    let id = ids[(c * CHUNK + j) / PER_IDENTITY];
                    (id, NewFace { embedding: Embedding { model: model.clone(), vector: v.to_vec() }, image_sha256: String::new(), bbox: [0.0; 4], quality: None, crop: None })
                })
                .collect();
            for batch in rows.chunks(1000) {
                g.enroll_many(batch.to_vec()).expect("enrolling");
            }
            if c % 10 == 9 {
                eprintln!("  {} / {} enrolled, {:.0} s", g.len(), a.n, t.elapsed().as_secs_f64());
            }
        }
        g.save_index().expect("saving the index");
        println!(
            "== gallery {} created: {} faces in {:.1} s wall, ≈ {:.1} s CPU (generation included), {} index",
            dir.display(),
            g.len(),
            t.elapsed().as_secs_f64(),
            cpu_seconds() - cpu0,
            a.storage
        );
        g
    };
    println!("memory: VmHWM {}, VmRSS {}", proc_status("VmHWM:"), proc_status("VmRSS:"));
    let qs = queries(data, a.seed, a.queries, a.n);
    // The probes' identities, as `queries` draws them (same seed, same order).
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed ^ 0x5151_5151);
    let truth_ids: Vec<String> = (0..a.queries).map(|_| format!("p{}", rng.random_range(0..a.n.div_ceil(PER_IDENTITY)))).collect();
    let probe = |q: &[f32]| Embedding { model: model.clone(), vector: q.to_vec() };
    let check = a.truth_queries.min(a.queries);
    for scoring in [Scoring::Max, Scoring::Mean] {
        let p = IdentifyParams { top_k: 5, scoring, ..IdentifyParams::new(Threshold::user(0.3765)) };
        let exact = IdentifyParams { search: SearchMode::Exact, ..p.clone() };
        g.identify(&probe(&qs[..DIM]), &p).expect("identify"); // warm-up (mean: builds the templates)
        let ms = time_each(&qs, |q| g.identify(&probe(q), &p).expect("identify"));
        let (mut rank1, mut rank1_exact, mut same_top) = (0usize, 0usize, 0usize);
        for (q, who) in qs.chunks_exact(DIM).zip(&truth_ids).take(check) {
            let got = g.identify(&probe(q), &p).expect("identify");
            let ex = g.identify(&probe(q), &exact).expect("identify");
            rank1 += usize::from(got.matches.first().map(|m| &m.name) == Some(who));
            rank1_exact += usize::from(ex.matches.first().map(|m| &m.name) == Some(who));
            same_top += usize::from(got.matches.first().map(|m| m.identity_id) == ex.matches.first().map(|m| m.identity_id));
        }
        println!(
            "identify (top 5, {scoring:?} scoring, default search) 1 thread: p50 {:.3} ms, p99 {:.3} ms ({} probes); rank-1 {:.4} (exact path {:.4}); same first identity as the exact path {:.4} ({check} probes)",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.len(),
            rank1 as f64 / check as f64,
            rank1_exact as f64 / check as f64,
            same_top as f64 / check as f64
        );
        println!("memory after the queries: VmHWM {}, VmRSS {}", proc_status("VmHWM:"), proc_status("VmRSS:"));
    }
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("index_scale: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "usearch {}: SIMD compiled {}, available {}",
        usearch::version(),
        usearch::hardware_acceleration_compiled(),
        usearch::hardware_acceleration_available()
    );
    if a.crossover {
        crossover(&a);
        return;
    }
    if a.data.contains(&Data::LfwLike) {
        fit_lfw(&a.lfw);
    }
    if let Some(dir) = &a.gallery {
        if a.data != [Data::LfwLike] {
            eprintln!("index_scale: --gallery needs --data lfw-like");
            std::process::exit(2);
        }
        for &d in &a.data {
            gallery(&a, d, dir);
        }
        return;
    }
    if let Some(kind) = a.raw {
        for &d in &a.data {
            raw(&a, d, kind);
        }
        return;
    }
    for &d in &a.data {
        run(&a, d);
    }
}
