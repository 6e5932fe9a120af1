//! Clustering speed on synthetic face-like embeddings: identity centres (random unit vectors in
//! 512-d) plus Gaussian noise, so that two faces of one identity have cosine similarity ≈ 0.55
//! (typical of the default model on LFW) and faces of different identities ≈ 0. Identity sizes
//! 1–19 faces (mean 10). Seeded: every run clusters the same data.
//!
//! `cargo bench --bench cluster` (sizes 10,000 and 100,000), or
//! `cargo bench --bench cluster -- 20000` for other sizes; `-- --exact 20000` forces the exact
//! neighbour graph at any size (to measure what the approximate graph costs in recall); `-- --big 2000`
//! puts a tenth of the faces into identities of 2,000 faces each; `--m 16 --efc 96 --efs 32`
//! override the parameters of the approximate graph's HNSW index, and `-- --approximate 20000`
//! uses it at any size (below the exact path's limit too). `-- --graphs --m 8,16 --efc 24,48
//! --efs 33,64 20000` builds the neighbour graph alone through the index for each combination,
//! and reports wall and CPU times and the recall of the exact graph's edges.

use std::time::Instant;

use faceprint::cluster::{cluster, evaluate, ClusterParams, FaceInput};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` faces: (embeddings `[n, 512]`, identity per face; one face per photo). With `big > 0`,
/// the first identities have `big` faces each, until they hold a tenth of the faces.
fn synthetic(n: usize, seed: u64, big: usize) -> (Vec<f32>, Vec<usize>) {
    const D: usize = 512;
    let sigma = 0.04f32; // 512·σ² ≈ 0.82 → same-identity cosine ≈ 1 / 1.82 ≈ 0.55
    let mut rng = Rng(seed);
    let (mut vecs, mut ids) = (Vec::with_capacity(n * D), Vec::with_capacity(n));
    let mut id = 0;
    while ids.len() < n {
        let mut centre: Vec<f32> = (0..D).map(|_| rng.normal()).collect();
        normalise(&mut centre);
        let size = if big > 0 && ids.len() < n / 10 { big } else { 1 + (rng.next() % 19) as usize };
        for _ in 0..size.min(n - ids.len()) {
            let mut v: Vec<f32> = centre.iter().map(|c| c + sigma * rng.normal()).collect();
            normalise(&mut v);
            vecs.extend_from_slice(&v);
            ids.push(id);
        }
        id += 1;
    }
    (vecs, ids)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Sizes: the bare numbers, not the values of `--big`, `--m`, `--efc`, `--efs`.
    let takes_value = ["--big", "--m", "--efc", "--efs"];
    let sizes: Vec<usize> = args.iter().enumerate().filter(|(i, _)| *i == 0 || !takes_value.contains(&args[i - 1].as_str())).filter_map(|(_, a)| a.parse().ok()).collect();
    let exact = args.iter().any(|a| a == "--exact");
    // `--big N`: a tenth of the faces in identities of N faces each (a family member in every
    // photo), to check that large groups do not slow the merging down.
    let big = args.iter().position(|a| a == "--big").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(0usize);
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    let mut params = ClusterParams { exact_below: if exact { usize::MAX } else { ClusterParams::default().exact_below }, ..Default::default() };
    // `--m`, `--efc`, `--efs` (first value) override the approximate graph's index parameters;
    // `--approximate` uses that graph at every size.
    let mut index = faceprint::cluster::knn::graph_index_params();
    if let Some(&m) = list(&args, "--m", &[]).first() {
        index.connectivity = m;
    }
    if let Some(&e) = list(&args, "--efc", &[]).first() {
        index.ef_construction = e;
    }
    if let Some(&e) = list(&args, "--efs", &[]).first() {
        index.ef_search = e;
    }
    if args.iter().any(|a| a == "--approximate") {
        params.exact_below = 0;
    }
    let graph = if exact {
        "exact at every size".to_string()
    } else {
        format!("exact below {} faces, HNSW index above (M {}, ef_construction {}, ef_search {})", params.exact_below, index.connectivity, index.ef_construction, index.ef_search)
    };
    params.graph_index = index;
    println!("neighbour graph: {graph}");
    println!("clustering synthetic faces (512-d, default parameters: threshold {}, {} neighbours, min {} faces)", params.threshold, params.neighbours, params.min_faces);
    println!("{:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>10} {:>6}", "faces", "seconds", "CPU s", "clusters", "pair P", "pair R", "unassigned", "load");
    if args.iter().any(|a| a == "--graphs") {
        graphs(&args, &sizes, big, params.neighbours, params.threshold);
        return;
    }
    for n in sizes {
        let (vecs, ids) = synthetic(n, 42, big);
        let faces: Vec<FaceInput> =
            vecs.chunks_exact(512).enumerate().map(|(i, v)| FaceInput { vector: v, photo: i as u64, quality: None, person: None, not_persons: Vec::new() }).collect();
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let c = match cluster(&faces, &params) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("clustering failed: {e}");
                std::process::exit(1);
            }
        };
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let m = evaluate(&c.assignment(n), &ids);
        println!(
            "{:>8} {:>10.2} {:>8.1} {:>9} {:>9.4} {:>9.4} {:>9.1}% {:>6}",
            n,
            secs,
            cpu,
            m.clusters,
            m.pairwise.precision,
            m.pairwise.recall,
            m.unassigned_share * 100.0,
            load()
        );
    }
}

/// Comma-separated numbers after `flag`, or `default`.
fn list(args: &[String], flag: &str, default: &[usize]) -> Vec<usize> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_else(|| default.to_vec())
}

/// `--graphs`: the neighbour graph alone, through the HNSW index, for each connectivity
/// (`--m`), ef_construction (`--efc`) and ef_search (`--efs`): build and search times, and the
/// recall of the exact graph's edges (≥ the merge threshold, top k) on 500 sampled faces.
fn graphs(args: &[String], sizes: &[usize], big: usize, k: usize, floor: f32) {
    use faceprint::index::{IndexParams, SearchMode, VectorIndex, VectorStorage};
    let storage = if args.iter().any(|a| a == "--f16") { VectorStorage::F16 } else { VectorStorage::F32 };
    for &n in sizes {
        let (vecs, _) = synthetic(n, 42, big);
        let sample: Vec<usize> = (0..500.min(n)).map(|j| j * n / 500.min(n)).collect();
        let truth: Vec<Vec<u32>> = sample
            .iter()
            .map(|&i| {
                let q = &vecs[i * 512..(i + 1) * 512];
                let mut all: Vec<(f32, u32)> = (0..n).filter(|&j| j != i).map(|j| (faceprint::compare::dot(q, &vecs[j * 512..(j + 1) * 512]), j as u32)).filter(|e| e.0 >= floor).collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                all.truncate(k);
                all.into_iter().map(|e| e.1).collect()
            })
            .collect();
        let wanted: usize = truth.iter().map(Vec::len).sum();
        let recall = |row_of: &dyn Fn(usize) -> Vec<u64>| -> usize { sample.iter().enumerate().map(|(s, &i)| { let row = row_of(i); truth[s].iter().filter(|&&j| row.contains(&(j as u64))).count() }).sum() };
        for m in list(args, "--m", &[16]) {
            for efc in list(args, "--efc", &[128]) {
                let params = IndexParams { connectivity: m, ef_construction: efc, storage, ..Default::default() };
                let (t, c0) = (Instant::now(), cpu_seconds());
                let mut index = VectorIndex::new(512, params).expect("index");
                index.reserve(n).expect("reserve");
                let keys: Vec<u64> = (0..n as u64).collect();
                index.add_batch(&keys, &vecs).expect("add");
                let (build, build_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c0);
                for efs in list(args, "--efs", &[64]) {
                    index.set_ef_search(efs).expect("ef");
                    let (t, c0) = (Instant::now(), cpu_seconds());
                    let rows = index.knn_graph(k, SearchMode::Approximate).expect("graph");
                    let (search, search_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c0);
                    let row_of: std::collections::HashMap<u64, usize> = index.keys().iter().enumerate().map(|(r, &key)| (key, r)).collect();
                    let found = recall(&|i| row_of.get(&(i as u64)).map(|&r| rows[r].iter().map(|nb| nb.key).collect()).unwrap_or_default());
                    println!(
                        "graph {n} faces, {storage:?}, M {m}, ef_construction {efc}, ef_search {efs}: build {build:.2} s ({build_cpu:.1} CPU s), search {search:.2} s ({search_cpu:.1} CPU s), total {:.2} s; edge recall {:.4} ({found}/{wanted}); load {}",
                        build + search,
                        found as f64 / wanted.max(1) as f64,
                        load()
                    );
                }
            }
        }
    }
}

/// CPU seconds (user + system) this process has used so far, all threads (`getrusage`).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The 1-minute load average (Linux `/proc/loadavg`), or "?".
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(str::to_string)).unwrap_or_else(|| "?".into())
}
