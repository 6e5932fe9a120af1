//! Clustering speed on synthetic face-like embeddings: identity centres (random unit vectors in
//! 512-d) plus Gaussian noise, so that two faces of one identity have cosine similarity ≈ 0.55
//! (typical of the default model on LFW) and faces of different identities ≈ 0. Identity sizes
//! 1–19 faces (mean 10). Seeded: every run clusters the same data.
//!
//! `cargo bench --bench cluster` (sizes 10,000 and 100,000), or
//! `cargo bench --bench cluster -- 20000` for other sizes; `-- --exact 20000` forces the exact
//! neighbour graph at any size (to measure what the inverted lists cost in recall); `-- --big 2000`
//! puts a tenth of the faces into identities of 2,000 faces each.

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
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    let exact = args.iter().any(|a| a == "--exact");
    // `--big N`: a tenth of the faces in identities of N faces each (a family member in every
    // photo), to check that large groups do not slow the merging down.
    let big = args.iter().position(|a| a == "--big").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(0usize);
    let sizes: Vec<usize> = sizes.into_iter().filter(|&s| s != big).collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    let params = ClusterParams { exact_below: if exact { usize::MAX } else { ClusterParams::default().exact_below }, ..Default::default() };
    println!("neighbour graph: {}", if exact { "exact at every size".to_string() } else { format!("exact below {} faces, inverted lists above", params.exact_below) });
    println!("clustering synthetic faces (512-d, default parameters: threshold {}, {} neighbours, min {} faces)", params.threshold, params.neighbours, params.min_faces);
    println!("{:>8} {:>10} {:>9} {:>9} {:>9} {:>10}", "faces", "seconds", "clusters", "pair P", "pair R", "unassigned");
    if args.iter().any(|a| a == "--graphs") {
        // Neighbour-graph paths alone, same data, same k and floor.
        for &n in &sizes {
            let (vecs, _) = synthetic(n, 42, big);
            let t = Instant::now();
            let g = faceprint::cluster::knn::neighbours_ivf(&vecs, 512, params.neighbours, params.threshold, 2, faceprint::cluster::knn::IVF_PROBES);
            let ivf = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let h = faceprint::cluster::knn::neighbours_hnsw(&vecs, 512, params.neighbours, params.threshold).expect("hnsw");
            let hnsw = t.elapsed().as_secs_f64();
            let count = |g: &Vec<Vec<faceprint::cluster::knn::Edge>>| g.iter().map(Vec::len).sum::<usize>();
            println!("graph {n}: inverted lists {ivf:.2} s ({} edges), HNSW index {hnsw:.2} s ({} edges)", count(&g), count(&h));
        }
        return;
    }
    for n in sizes {
        let (vecs, ids) = synthetic(n, 42, big);
        let faces: Vec<FaceInput> =
            vecs.chunks_exact(512).enumerate().map(|(i, v)| FaceInput { vector: v, photo: i as u64, quality: None, person: None, not_persons: Vec::new() }).collect();
        let t = Instant::now();
        let c = match cluster(&faces, &params) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("clustering failed: {e}");
                std::process::exit(1);
            }
        };
        let secs = t.elapsed().as_secs_f64();
        let m = evaluate(&c.assignment(n), &ids);
        println!(
            "{:>8} {:>10.2} {:>9} {:>9.4} {:>9.4} {:>9.1}%",
            n,
            secs,
            m.clusters,
            m.pairwise.precision,
            m.pairwise.recall,
            m.unassigned_share * 100.0
        );
    }
}
