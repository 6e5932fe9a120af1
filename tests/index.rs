//! VectorIndex: approximate against exact search, the exact path against f64, removal and
//! replacement, persistence and damaged files, input errors. Seeded random unit vectors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use faceprint::index::{ExactVectors, IndexError, IndexParams, Neighbor, SearchMode, VectorIndex, VectorStorage};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn unit_vectors(seed: u64, n: usize, dim: usize) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![0f32; n * dim];
    for v in out.chunks_exact_mut(dim) {
        for x in v.iter_mut() {
            *x = rng.sample(StandardNormal);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    out
}

fn build(params: IndexParams, vectors: &[f32], dim: usize) -> VectorIndex {
    let mut index = VectorIndex::new(dim, params).unwrap();
    let keys: Vec<u64> = (0..(vectors.len() / dim) as u64).map(|i| i * 3 + 1).collect();
    index.add_batch(&keys, vectors).unwrap();
    index
}

fn naive(vectors: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<(u64, f64)> {
    let mut all: Vec<(u64, f64)> = vectors
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| ((i as u64) * 3 + 1, v.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum()))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn recall(approx: &[Neighbor], exact: &[Neighbor]) -> usize {
    approx.iter().filter(|a| exact.iter().any(|e| e.key == a.key)).count()
}

/// Face-like seeded unit vectors: identities of 10 samples, a sample being
/// normalize(centre + 0.8·z) with centre uniform on the sphere and z ~ N(0, I/dim), so samples of
/// one identity have cosine ≈ 0.6 and different identities ≈ 0 (as embeddings of real faces).
fn face_like(seed: u64, n: usize, dim: usize, identities: Option<usize>) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ids = identities.unwrap_or(n.div_ceil(10));
    let centres = unit_vectors(seed ^ 0xFACE, ids, dim);
    let mut out = vec![0f32; n * dim];
    for (i, v) in out.chunks_exact_mut(dim).enumerate() {
        let id = if identities.is_some() { rng.random_range(0..ids) } else { i / 10 };
        let c = &centres[id * dim..(id + 1) * dim];
        for (x, c) in v.iter_mut().zip(c) {
            let g: f32 = rng.sample(StandardNormal);
            *x = c + 0.8 * g / (dim as f32).sqrt();
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    out
}

/// Recall@10 of the HNSW path against the exact path at the default parameters, above
/// `exact_below` so that `Auto` takes the approximate path, on face-like vectors (i.i.d. uniform
/// 512-d vectors, whose nearest neighbours are barely nearer than anything else, need a far
/// larger ef: BENCHMARKS.md reports them), and reported similarities against f64.
#[test]
fn approximate_recall_at_defaults() {
    const DIM: usize = 512;
    const N: usize = 15_000;
    let params = IndexParams::default();
    assert!(N > params.exact_below, "the test must exercise the approximate path of Auto");
    let vectors = face_like(7, N, DIM, None);
    let queries = face_like(7, 200, DIM, Some(N / 10));
    for storage in [VectorStorage::F32, VectorStorage::F16] {
        let index = build(IndexParams { storage, ..params.clone() }, &vectors, DIM);
        assert_eq!(index.len(), N);
        let mut hits = 0;
        let mut max_err = 0f64;
        for q in queries.chunks_exact(DIM) {
            let auto = index.search(q, 10, SearchMode::Auto).unwrap();
            let approx = index.search(q, 10, SearchMode::Approximate).unwrap();
            assert_eq!(auto, approx, "Auto above exact_below is the approximate path");
            let exact = index.search(q, 10, SearchMode::Exact).unwrap();
            assert_eq!(approx.len(), 10);
            hits += recall(&approx, &exact);
            // reported similarities against f64 over the original f32 vectors
            for n in &approx {
                let i = ((n.key - 1) / 3) as usize;
                let t: f64 = vectors[i * DIM..(i + 1) * DIM].iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
                max_err = max_err.max((t - n.similarity as f64).abs());
            }
            assert!(approx.windows(2).all(|w| w[0].similarity >= w[1].similarity), "best first");
        }
        let r = hits as f64 / (10.0 * 200.0);
        eprintln!("{storage:?}: recall@10 {r:.4}, max similarity error {max_err:.2e}");
        assert!(r >= 0.99, "{storage:?}: recall@10 {r} below 0.99");
        let bound = if storage == VectorStorage::F16 { 1e-3 } else { 1e-5 };
        assert!(max_err < bound, "{storage:?}: similarity error {max_err} ≥ {bound}");
    }
}

/// The exact path returns the same neighbours and similarities as a naive f64 computation:
/// similarity within 1e-5 (f32 storage; f32 accumulation of 512 products of unit vectors),
/// 1e-3 (f16 storage, bound 2⁻¹¹ ≈ 4.9e-4 plus rounding); keys equal except where two f64
/// similarities are closer than that tolerance.
#[test]
fn exact_path_matches_f64() {
    const DIM: usize = 512;
    let vectors = unit_vectors(11, 3000, DIM);
    let queries = unit_vectors(12, 50, DIM);
    for (storage, tol) in [(VectorStorage::F32, 1e-5), (VectorStorage::F16, 1e-3)] {
        let index = build(IndexParams { storage, ..Default::default() }, &vectors, DIM);
        for q in queries.chunks_exact(DIM) {
            let got = index.search(q, 20, SearchMode::Exact).unwrap();
            let want = naive(&vectors, DIM, q, 21);
            assert_eq!(got.len(), 20);
            for (g, w) in got.iter().zip(&want) {
                assert!((g.similarity as f64 - w.1).abs() < tol, "{storage:?}: {} vs {}", g.similarity, w.1);
                if g.key != w.0 {
                    // only a near-tie may swap: the key we returned must be as similar within tol
                    let i = ((g.key - 1) / 3) as usize;
                    let t: f64 = vectors[i * DIM..(i + 1) * DIM].iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
                    assert!((t - w.1).abs() < 2.0 * tol, "{storage:?}: key {} ({t}) instead of {} ({})", g.key, w.0, w.1);
                }
            }
        }
    }
}

#[test]
fn removal_and_replacement() {
    const DIM: usize = 64;
    let vectors = unit_vectors(21, 2000, DIM);
    for mode in [SearchMode::Exact, SearchMode::Approximate] {
        let mut index = build(IndexParams::default(), &vectors, DIM);
        // each stored vector finds itself first
        let q0 = &vectors[..DIM];
        assert_eq!(index.search(q0, 1, mode).unwrap()[0].key, 1);
        // removal: key 1 never comes back, even for its own vector, and a second removal is false
        assert!(index.remove(1));
        assert!(!index.remove(1));
        assert!(!index.contains(1));
        assert_eq!(index.len(), 1999);
        let r = index.search(q0, 50, mode).unwrap();
        assert!(r.iter().all(|n| n.key != 1), "{mode:?}: removed key returned");
        // remove many, search with each removed vector
        for i in 1..500usize {
            assert!(index.remove(i as u64 * 3 + 1));
        }
        for i in (0..500usize).step_by(25) {
            let r = index.search(&vectors[i * DIM..(i + 1) * DIM], 10, mode).unwrap();
            assert!(r.iter().all(|n| (n.key - 1) / 3 >= 500), "{mode:?}: removed key returned");
        }
        assert!(index.keys().iter().all(|&k| (k - 1) / 3 >= 500));
        assert_eq!(index.keys().len(), 1500);
        // replacement: key 1501*3+1 gets the vector of row 0; searching row 0 finds it, its old
        // vector no longer does
        let key = 1501 * 3 + 1;
        let old = vectors[1501 * DIM..1502 * DIM].to_vec();
        index.add(key, q0).unwrap();
        assert_eq!(index.len(), 1500);
        let r = index.search(q0, 1, mode).unwrap();
        assert_eq!(r[0].key, key);
        assert!((r[0].similarity - 1.0).abs() < 1e-5);
        let r = index.search(&old, 1, mode).unwrap();
        assert_ne!(r[0].key, key, "{mode:?}: replaced vector still found");
        // re-adding removed keys brings them back (slots are reused)
        for i in 0..500usize {
            index.add(i as u64 * 3 + 1, &vectors[i * DIM..(i + 1) * DIM]).unwrap();
        }
        assert_eq!(index.len(), 2000);
        assert_eq!(index.search(&vectors[DIM * 7..DIM * 8], 1, mode).unwrap()[0].key, 7 * 3 + 1);
        // a batch with a repeated key keeps its last row
        index.add_batch(&[5, 5], &[&vectors[..DIM], &vectors[DIM..2 * DIM]].concat()).unwrap();
        assert_eq!(index.vector(5).unwrap(), vectors[DIM..2 * DIM].to_vec());
        assert_eq!(index.len(), 2001);
    }
}

#[test]
fn knn_graph_matches_exact_search() {
    const DIM: usize = 32;
    let vectors = unit_vectors(31, 600, DIM);
    let index = build(IndexParams::default(), &vectors, DIM);
    let graph = index.knn_graph(5, SearchMode::Exact).unwrap();
    assert_eq!(graph.len(), index.len());
    for (row, &key) in graph.iter().zip(index.keys()) {
        assert_eq!(row.len(), 5);
        assert!(row.iter().all(|n| n.key != key), "a vector is not its own neighbour");
        let v = index.vector(key).unwrap();
        let direct: Vec<u64> = index.search(&v, 6, SearchMode::Exact).unwrap().into_iter().map(|n| n.key).filter(|&k| k != key).take(5).collect();
        assert_eq!(row.iter().map(|n| n.key).collect::<Vec<_>>(), direct);
    }
    let approx = index.knn_graph(5, SearchMode::Approximate).unwrap();
    let hits: usize = approx.iter().zip(&graph).map(|(a, e)| recall(a, e)).sum();
    assert!(hits as f64 / (5.0 * 600.0) > 0.95);
    // search_batch equals one search per query
    let qs = unit_vectors(32, 7, DIM);
    let batch = index.search_batch(&qs, 3, SearchMode::Exact).unwrap();
    for (q, b) in qs.chunks_exact(DIM).zip(&batch) {
        assert_eq!(&index.search(q, 3, SearchMode::Exact).unwrap(), b);
    }
}

#[test]
fn save_load_round_trip() {
    const DIM: usize = 48;
    let dir = std::env::temp_dir().join(format!("faceprint-index-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vectors = unit_vectors(41, 1500, DIM);
    let queries = unit_vectors(42, 20, DIM);
    for storage in [VectorStorage::F32, VectorStorage::F16] {
        let params = IndexParams { storage, ..Default::default() };
        let mut index = build(params.clone(), &vectors, DIM);
        index.remove(4);
        index.remove(7);
        let path = dir.join(format!("idx-{storage:?}.fpidx"));
        index.save(&path, "generation 17").unwrap();
        let (loaded, tag) = VectorIndex::load(&path, params.clone()).unwrap();
        assert_eq!(tag, "generation 17");
        assert_eq!(loaded.len(), index.len());
        assert_eq!(loaded.dim(), DIM);
        assert!(!loaded.contains(4) && !loaded.contains(7) && loaded.contains(10));
        let mut a = loaded.keys().to_vec();
        let mut b = index.keys().to_vec();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        for q in queries.chunks_exact(DIM) {
            for mode in [SearchMode::Exact, SearchMode::Approximate] {
                assert_eq!(loaded.search(q, 10, mode).unwrap(), index.search(q, 10, mode).unwrap());
            }
        }
        // the loaded index keeps working: add, replace, remove
        let mut loaded = loaded;
        loaded.add(4, &queries[..DIM]).unwrap();
        assert_eq!(loaded.search(&queries[..DIM], 1, SearchMode::Approximate).unwrap()[0].key, 4);
        assert!(loaded.remove(4));
        // storage or connectivity other than the file's: refused, so the caller rebuilds
        let other = IndexParams { storage: if storage == VectorStorage::F32 { VectorStorage::F16 } else { VectorStorage::F32 }, ..Default::default() };
        assert!(matches!(VectorIndex::load(&path, other), Err(IndexError::File { .. })));
        // overwriting is atomic: no temporary file left behind
        index.save(&path, "generation 18").unwrap();
        assert_eq!(VectorIndex::load(&path, params).unwrap().1, "generation 18");
    }
    // an empty index round-trips
    let empty = VectorIndex::new(DIM, IndexParams::default()).unwrap();
    let path = dir.join("empty.fpidx");
    empty.save(&path, "").unwrap();
    let (e, tag) = VectorIndex::load(&path, IndexParams::default()).unwrap();
    assert!(e.is_empty() && tag.is_empty());
    assert!(e.search(&vectors[..DIM], 3, SearchMode::Auto).unwrap().is_empty());
    // Saving and loading stream through temporary files (the engine's own blob): none is left.
    assert!(hidden_files(&dir).is_empty(), "temporary files left: {:?}", hidden_files(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files of `dir` whose names start with a dot (the index's temporary files).
fn hidden_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect()
}

fn file_error(path: &std::path::Path) -> String {
    match VectorIndex::load(path, IndexParams::default()) {
        Err(IndexError::File { path: p, message }) => {
            assert_eq!(p, path, "the error names the file");
            message
        }
        Err(e) => panic!("expected IndexError::File, got {e}"),
        Ok(_) => panic!("a damaged file was accepted"),
    }
}

#[test]
fn damaged_files_are_refused() {
    const DIM: usize = 16;
    let dir = std::env::temp_dir().join(format!("faceprint-index-damage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let index = build(IndexParams::default(), &unit_vectors(51, 300, DIM), DIM);
    let good = dir.join("good.fpidx");
    index.save(&good, "tag").unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.join("bad.fpidx");

    assert!(file_error(&dir.join("missing.fpidx")).contains("opening"));
    // truncated at many lengths, including inside the header, the keys and the blob
    for len in [0, 5, 20, 40, 100, bytes.len() / 2, bytes.len() - 5, bytes.len() - 1] {
        std::fs::write(&bad, &bytes[..len]).unwrap();
        let m = file_error(&bad);
        assert!(m.contains("truncated") || m.contains("damaged"), "len {len}: {m}");
    }
    // a flipped byte anywhere is caught by the checksum (or the header checks)
    for pos in [40, 60, bytes.len() / 3, bytes.len() / 2, bytes.len() - 10, bytes.len() - 2] {
        let mut b = bytes.clone();
        b[pos] ^= 0x40;
        std::fs::write(&bad, &b).unwrap();
        let m = file_error(&bad);
        assert!(m.contains("damaged") || m.contains("truncated"), "pos {pos}: {m}");
    }
    // another format version
    let mut b = bytes.clone();
    b[8] = 99;
    std::fs::write(&bad, &b).unwrap();
    assert!(file_error(&bad).contains("version 99"));
    // not an index at all
    std::fs::write(&bad, b"hello, this is not an index file, just some text to fill it").unwrap();
    assert!(file_error(&bad).contains("magic"));
    // trailing garbage
    let mut b = bytes.clone();
    b.extend_from_slice(b"xx");
    std::fs::write(&bad, &b).unwrap();
    assert!(file_error(&bad).contains("truncated or damaged"));
    // an unwritable destination is an error naming it, not a panic
    let err = index.save(&dir.join("no/such/dir/x.fpidx"), "t").unwrap_err();
    assert!(matches!(err, IndexError::File { .. }), "{err}");
    // failed loads leave no temporary file behind either
    assert!(hidden_files(&dir).is_empty(), "temporary files left: {:?}", hidden_files(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn input_errors() {
    let mut index = VectorIndex::new(4, IndexParams::default()).unwrap();
    assert!(matches!(VectorIndex::new(0, IndexParams::default()), Err(IndexError::InvalidParameter { name: "dim", .. })));
    assert!(matches!(
        VectorIndex::new(4, IndexParams { connectivity: 1, ..Default::default() }),
        Err(IndexError::InvalidParameter { name: "connectivity", .. })
    ));
    assert!(matches!(index.add(1, &[1.0, 0.0, 0.0]), Err(IndexError::WrongDimension { expected: 4, received: 3 })));
    assert!(matches!(index.add(2, &[f32::NAN, 0.0, 0.0, 0.0]), Err(IndexError::NonFinite { key: 2 })));
    assert!(matches!(index.add(3, &[f32::INFINITY, 0.0, 0.0, 0.0]), Err(IndexError::NonFinite { key: 3 })));
    assert!(matches!(index.add(u64::MAX, &[1.0, 0.0, 0.0, 0.0]), Err(IndexError::InvalidParameter { name: "key", .. })));
    assert!(matches!(index.add_batch(&[1, 2], &[0.5; 7]), Err(IndexError::InvalidParameter { name: "vectors", .. })));
    // a batch with one bad row adds nothing
    assert!(index.add_batch(&[1, 2], &[1.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0, 0.0]).is_err());
    assert!(index.is_empty());
    assert!(matches!(index.search(&[1.0, 0.0], 3, SearchMode::Auto), Err(IndexError::WrongDimension { expected: 4, received: 2 })));
    assert!(matches!(index.search(&[f32::NAN, 0.0, 0.0, 0.0], 3, SearchMode::Exact), Err(IndexError::NonFinite { .. })));
    assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 3, SearchMode::Auto).unwrap().is_empty());
    index.add(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    index.add(2, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    // k larger than the index, k = 0
    assert_eq!(index.search(&[1.0, 0.0, 0.0, 0.0], 10, SearchMode::Approximate).unwrap().len(), 2);
    assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 0, SearchMode::Exact).unwrap().is_empty());
    let mut f16 = VectorIndex::new(2, IndexParams { storage: VectorStorage::F16, ..Default::default() }).unwrap();
    assert!(matches!(f16.add(1, &[1e6, 0.0]), Err(IndexError::InvalidParameter { name: "vector", .. })));
    assert!(matches!(index.search_batch(&[1.0; 5], 1, SearchMode::Auto), Err(IndexError::InvalidParameter { name: "queries", .. })));
}

/// Concurrent searches through `&self` (as the gallery does behind an `RwLock`) from more threads
/// than usearch has contexts for all succeed.
#[test]
fn concurrent_searches() {
    const DIM: usize = 32;
    let vectors = unit_vectors(61, 1000, DIM);
    let index = build(IndexParams::default(), &vectors, DIM);
    std::thread::scope(|s| {
        for t in 0..48 {
            let index = &index;
            let vectors = &vectors;
            s.spawn(move || {
                for i in 0..50 {
                    let row = (t * 50 + i) % 1000;
                    let r = index.search(&vectors[row * DIM..(row + 1) * DIM], 1, SearchMode::Approximate).unwrap();
                    assert_eq!(r[0].key, row as u64 * 3 + 1);
                }
            });
        }
    });
}

/// The exact vectors of an i8 index, in memory (a gallery reads them from its store). Keys can
/// be deleted, and reads made to fail, to test both paths.
#[derive(Default)]
struct MapSource {
    rows: Mutex<HashMap<u64, Vec<f32>>>,
    broken: Mutex<bool>,
}

impl MapSource {
    fn of(vectors: &[f32], dim: usize) -> Arc<MapSource> {
        let s = MapSource::default();
        for (i, v) in vectors.chunks_exact(dim).enumerate() {
            s.rows.lock().unwrap().insert(i as u64 * 3 + 1, v.to_vec());
        }
        Arc::new(s)
    }
}

impl ExactVectors for MapSource {
    fn read(&self, key: u64, out: &mut [f32]) -> Result<bool, String> {
        if *self.broken.lock().unwrap() {
            return Err("disk on fire".into());
        }
        match self.rows.lock().unwrap().get(&key) {
            Some(v) => {
                out.copy_from_slice(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

fn build_i8(vectors: &[f32], dim: usize) -> (VectorIndex, Arc<MapSource>) {
    let source = MapSource::of(vectors, dim);
    let mut index = build(IndexParams { storage: VectorStorage::I8, ..Default::default() }, vectors, dim);
    index.set_exact_source(source.clone());
    (index, source)
}

/// i8 storage: candidates chosen by i8 scores, similarities rescored from the exact source, so
/// reported similarities equal f64 within 1e-5 (as f32 storage); recall@10 of the approximate
/// path against a naive f64 top 10 ≥ 0.99 at the defaults on face-like vectors, and the exact
/// path (i8 brute force, top k + 16 rescored) returns the naive top 20 on every query, keys
/// differing only where two f64 similarities are within 1e-5.
#[test]
fn i8_storage_rescores_exactly() {
    const DIM: usize = 512;
    const N: usize = 15_000;
    let vectors = face_like(71, N, DIM, None);
    let queries = face_like(71, 150, DIM, Some(N / 10));
    let (index, _source) = build_i8(&vectors, DIM);
    let (mut hits, mut max_err) = (0usize, 0f64);
    for q in queries.chunks_exact(DIM) {
        let want = naive(&vectors, DIM, q, 21);
        let exact = index.search(q, 20, SearchMode::Exact).unwrap();
        assert_eq!(exact.len(), 20);
        for (g, w) in exact.iter().zip(&want) {
            let i = ((g.key - 1) / 3) as usize;
            let t: f64 = vectors[i * DIM..(i + 1) * DIM].iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
            max_err = max_err.max((t - g.similarity as f64).abs());
            assert!(g.key == w.0 || (t - w.1).abs() < 1e-5, "exact path: key {} ({t}) instead of {} ({})", g.key, w.0, w.1);
        }
        let approx = index.search(q, 10, SearchMode::Approximate).unwrap();
        assert!(approx.windows(2).all(|w| w[0].similarity >= w[1].similarity), "best first");
        hits += approx.iter().filter(|a| want[..10].iter().any(|w| w.0 == a.key)).count();
        for n in &approx {
            let i = ((n.key - 1) / 3) as usize;
            let t: f64 = vectors[i * DIM..(i + 1) * DIM].iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
            max_err = max_err.max((t - n.similarity as f64).abs());
        }
    }
    let r = hits as f64 / (10.0 * 150.0);
    eprintln!("I8: recall@10 {r:.4} against naive f64, max similarity error {max_err:.2e}");
    assert!(r >= 0.99, "i8 recall@10 {r} below 0.99");
    assert!(max_err < 1e-5, "i8 similarity error {max_err}: not rescored exactly");
    // the stored vector comes from the source, exactly
    assert_eq!(index.vector(4).unwrap(), vectors[DIM..2 * DIM].to_vec());
}

/// i8 storage without a source is refused (no silently approximate similarities); a key the
/// source lost is dropped from the results; a failing source is an error naming the key;
/// removal, replacement and a save/load round trip work as with float storage.
#[test]
fn i8_storage_source_and_lifecycle() {
    const DIM: usize = 64;
    let vectors = unit_vectors(81, 1200, DIM);
    let q = &vectors[..DIM];
    let mut bare = build(IndexParams { storage: VectorStorage::I8, ..Default::default() }, &vectors, DIM);
    assert!(matches!(bare.search(q, 3, SearchMode::Exact), Err(IndexError::NoExactSource)));
    assert!(matches!(bare.search(q, 3, SearchMode::Approximate), Err(IndexError::NoExactSource)));
    assert!(matches!(bare.knn_graph(3, SearchMode::Exact), Err(IndexError::NoExactSource)));
    assert!(bare.vector(1).is_none());
    let source = MapSource::of(&vectors, DIM);
    bare.set_exact_source(source.clone());
    let mut index = bare;
    for mode in [SearchMode::Exact, SearchMode::Approximate] {
        let r = index.search(q, 1, mode).unwrap();
        assert_eq!(r[0].key, 1);
        assert!((r[0].similarity - 1.0).abs() < 1e-5);
    }
    // the source lost key 1 (deleted by another writer a moment before the index): dropped
    source.rows.lock().unwrap().remove(&1);
    let r = index.search(q, 5, SearchMode::Exact).unwrap();
    assert!(r.iter().all(|n| n.key != 1) && r.len() == 5);
    source.rows.lock().unwrap().insert(1, q.to_vec());
    // a failing source is an error, not a wrong answer
    *source.broken.lock().unwrap() = true;
    match index.search(q, 5, SearchMode::Approximate) {
        Err(IndexError::ExactSource { message, .. }) => assert!(message.contains("disk on fire")),
        other => panic!("expected ExactSource, got {other:?}"),
    }
    *source.broken.lock().unwrap() = false;
    // removal and replacement
    assert!(index.remove(1));
    for mode in [SearchMode::Exact, SearchMode::Approximate] {
        assert!(index.search(q, 20, mode).unwrap().iter().all(|n| n.key != 1));
    }
    let key = 700 * 3 + 1;
    index.add(key, q).unwrap();
    source.rows.lock().unwrap().insert(key, q.to_vec());
    assert_eq!(index.search(q, 1, SearchMode::Approximate).unwrap()[0].key, key);
    // knn graph with the source: each row its own exact neighbours
    let graph = index.knn_graph(3, SearchMode::Exact).unwrap();
    assert_eq!(graph.len(), index.len());
    // save and load: the codes and keys round-trip; the loaded index needs the source again
    let dir = std::env::temp_dir().join(format!("faceprint-index-i8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("i8.fpidx");
    index.save(&path, "g").unwrap();
    let params = IndexParams { storage: VectorStorage::I8, ..Default::default() };
    let (mut loaded, _) = VectorIndex::load(&path, params).unwrap();
    assert!(matches!(loaded.search(q, 3, SearchMode::Auto), Err(IndexError::NoExactSource)));
    loaded.set_exact_source(source.clone());
    for row in (0..1200).step_by(97) {
        let v = &vectors[row * DIM..(row + 1) * DIM];
        for mode in [SearchMode::Exact, SearchMode::Approximate] {
            assert_eq!(loaded.search(v, 10, mode).unwrap(), index.search(v, 10, mode).unwrap());
        }
    }
    // an i8 file is not loaded as f16 (the caller rebuilds)
    assert!(matches!(VectorIndex::load(&path, IndexParams { storage: VectorStorage::F16, ..Default::default() }), Err(IndexError::File { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}
