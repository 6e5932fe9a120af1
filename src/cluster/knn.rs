//! The neighbour graph the clustering starts from: for every face, its nearest faces by cosine
//! similarity, keeping only those at or above a floor.
//!
//! Paths, chosen by [`neighbours`] from the number of faces:
//! - **exact** (below [`EXACT_BELOW`] faces): every pair is scored by a blocked matrix product
//!   (`ndarray`'s `general_mat_mul`, i.e. the `matrixmultiply` kernels), rows split over
//!   threads; `n² · d` multiply-adds (n faces, d = 512);
//! - **approximate** (from [`EXACT_BELOW`] faces on): the project's nearest-neighbour index
//!   ([`crate::index::VectorIndex`], HNSW from the `usearch` library), built over the faces,
//!   then searched for each face's k nearest ([`neighbours_index`], [`graph_index_params`]).
//!
//!   A missed neighbour can only cost recall (a merge not proposed), never precision.
//!
//! # Which path
//! The exact graph, computed with a library GEMM, is used up to [`EXACT_BELOW`] (150,000) faces:
//! measured 94 s for the whole clustering of 100,000 faces on 2 idle cores, pairwise recall
//! 1.0000. Above it, the HNSW index (ANN structures come from a library); its build is serial
//! (concurrent usearch inserts strand nodes, `VectorIndex::add_batch`), so very large
//! collections are slow (188 CPU s for the graph of 100,000 faces). An inverted-list graph of
//! our own (IVF, 13.5 s and recall 0.9953 at 100,000) was measured and removed: BENCHMARKS.md
//! "Clustering".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

/// Queries per block (rows of one matrix product).
const ROW_BLOCK: usize = 256;
/// Candidates per block (columns of one matrix product). 256 × 4096 similarities = 4 MiB.
const COL_BLOCK: usize = 4096;

/// One edge of the neighbour graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    /// Index of the neighbour in the input.
    pub to: u32,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Below this many faces the graph is exact (blocked matrix products, `matrixmultiply`). Its time
/// grows with n²: measured 94 s wall (186 CPU s) for the whole clustering of 100,000 synthetic
/// faces on the idle 2-core machine, pairwise precision and recall 1.0000 (BENCHMARKS.md
/// "Clustering", `cargo bench --bench cluster -- --exact 100000`), inside the 2-minute target;
/// 150,000 would take about 2.25× that. Above it, the library HNSW index
/// ([`crate::cluster::ClusterParams::graph_index`]).
pub const EXACT_BELOW: usize = 150_000;

/// HNSW links per node (M) for a graph built by the index: the index default, 16. At 20,000
/// synthetic faces M = 8 or 12 lost up to 10 points of edge recall for little time
/// (BENCHMARKS.md "Clustering").
pub const GRAPH_CONNECTIVITY: usize = 16;

/// HNSW ef_construction for a graph built by the index: 96. The graph's recall depends mostly on
/// it: at 20,000 synthetic faces the edge recall was 0.85 at 24, 0.994 at 48 and 0.9995 at 96;
/// at 100,000, 48 gave pairwise recall 0.963 and 96 gave 0.9952 (BENCHMARKS.md "Clustering"). The index default (128) is chosen for 1:N searches.
pub const GRAPH_EF_CONSTRUCTION: usize = 96;

/// HNSW ef_search for a graph built by the index: 32 (usearch raises it to the k + 1 candidates
/// asked for, so the effective value is 33 at the default 32 neighbours). 64 gained 0.002 of edge
/// recall for 75 % more search time at 20,000 faces (BENCHMARKS.md "Clustering").
pub const GRAPH_EF_SEARCH: usize = 32;

/// The index parameters for a neighbour graph built by the index: [`GRAPH_CONNECTIVITY`],
/// [`GRAPH_EF_CONSTRUCTION`], [`GRAPH_EF_SEARCH`], f32 storage (exact similarities;
/// 512-d × 4 B × 100,000 faces = 205 MB).
pub fn graph_index_params() -> crate::index::IndexParams {
    crate::index::IndexParams {
        connectivity: GRAPH_CONNECTIVITY,
        ef_construction: GRAPH_EF_CONSTRUCTION,
        ef_search: GRAPH_EF_SEARCH,
        storage: crate::index::VectorStorage::F32,
        ..Default::default()
    }
}

/// For each of the `n = vectors.len() / dim` unit vectors (row-major `[n, dim]`), its at most `k`
/// most similar other vectors with similarity ≥ `floor`, best first (ties by index). Exact below
/// `exact_below` vectors, on `threads` threads (≥ 1); from there on through the HNSW index with
/// `index` parameters ([`neighbours_index`], on every core).
///
/// The caller checks shapes: `vectors.len()` must be a multiple of `dim` and `dim > 0`.
///
/// # Errors
/// [`crate::index::IndexError`] from the index (approximate path only).
pub fn neighbours(vectors: &[f32], dim: usize, k: usize, floor: f32, threads: usize, exact_below: usize, index: &crate::index::IndexParams) -> Result<Vec<Vec<Edge>>, crate::index::IndexError> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    if n < exact_below {
        return Ok(neighbours_exact(vectors, dim, k, floor, threads));
    }
    neighbours_index(vectors, dim, k, floor, index)
}

/// The exact path of [`neighbours`], whatever the size.
pub fn neighbours_exact(vectors: &[f32], dim: usize, k: usize, floor: f32, threads: usize) -> Vec<Vec<Edge>> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    if n == 0 || k == 0 {
        return vec![Vec::new(); n];
    }
    let all = match ArrayView2::from_shape((n, dim), &vectors[..n * dim]) {
        Ok(a) => a,
        Err(_) => return vec![Vec::new(); n],
    };
    let blocks = n.div_ceil(ROW_BLOCK);
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Vec<Edge>>> = Mutex::new(vec![Vec::new(); n]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut prod = Array2::<f32>::zeros((ROW_BLOCK, COL_BLOCK));
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= blocks {
                        break;
                    }
                    let r0 = b * ROW_BLOCK;
                    let r1 = (r0 + ROW_BLOCK).min(n);
                    let rows = all.slice(ndarray::s![r0..r1, ..]);
                    let mut found: Vec<Vec<Edge>> = vec![Vec::new(); r1 - r0];
                    let mut c0 = 0;
                    while c0 < n {
                        let c1 = (c0 + COL_BLOCK).min(n);
                        let cols = all.slice(ndarray::s![c0..c1, ..]);
                        let mut p = prod.slice_mut(ndarray::s![..r1 - r0, ..c1 - c0]);
                        general_mat_mul(1.0, &rows, &cols.t(), 0.0, &mut p);
                        for (i, row) in p.outer_iter().enumerate() {
                            let me = r0 + i;
                            let f = &mut found[i];
                            for (j, &s) in row.iter().enumerate() {
                                let other = c0 + j;
                                if s >= floor && other != me {
                                    f.push(Edge { to: other as u32, similarity: s });
                                }
                            }
                            // Keep lists bounded while scanning: prune to k once they grow past 4k.
                            if f.len() > 4 * k.max(16) {
                                keep_best(f, k);
                            }
                        }
                        c0 = c1;
                    }
                    for f in &mut found {
                        keep_best(f, k);
                    }
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    for (i, f) in found.into_iter().enumerate() {
                        o[r0 + i] = f;
                    }
                }
            });
        }
    });
    out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The approximate graph from the project's nearest-neighbour index ([`crate::index::VectorIndex`],
/// HNSW): the vectors are inserted one by one (serially, see `VectorIndex::add_batch`), then
/// every vector is searched for its `k` nearest on every core ([`VectorIndex::knn_graph`](crate::index::VectorIndex::knn_graph));
/// neighbours below `floor` are dropped. `params` are the index's (connectivity, ef_construction,
/// ef_search, storage); its `exact_below` is ignored (always approximate).
///
/// # Errors
/// [`crate::index::IndexError`] from the index (invalid parameters, out of memory).
pub fn neighbours_index(vectors: &[f32], dim: usize, k: usize, floor: f32, params: &crate::index::IndexParams) -> Result<Vec<Vec<Edge>>, crate::index::IndexError> {
    use crate::index::{SearchMode, VectorIndex};
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    if n == 0 || k == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    let mut index = VectorIndex::new(dim, params.clone())?;
    index.reserve(n)?;
    let keys: Vec<u64> = (0..n as u64).collect();
    index.add_batch(&keys, &vectors[..n * dim])?;
    let rows = index.knn_graph(k, SearchMode::Approximate)?;
    let mut out = vec![Vec::new(); n];
    for (row, &key) in rows.into_iter().zip(index.keys()) {
        let me = key as usize;
        let mut f: Vec<Edge> = row.into_iter().filter(|nb| nb.similarity >= floor && nb.key as usize != me).map(|nb| Edge { to: nb.key as u32, similarity: nb.similarity }).collect();
        keep_best(&mut f, k);
        out[me] = f;
    }
    Ok(out)
}

/// Sorts best first (ties by index) and truncates to `k`.
fn keep_best(f: &mut Vec<Edge>, k: usize) {
    let cmp = |a: &Edge, b: &Edge| b.similarity.total_cmp(&a.similarity).then(a.to.cmp(&b.to));
    if f.len() > k {
        f.select_nth_unstable_by(k - 1, cmp);
        f.truncate(k);
    }
    f.sort_by(cmp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        // 600 pseudo-random unit vectors in 8-d, more than one row and column block apart.
        let (n, d) = (600usize, 8usize);
        let mut state = 12345u64;
        let mut v = Vec::with_capacity(n * d);
        for _ in 0..n * d {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            v.push(((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5);
        }
        for row in v.chunks_mut(d) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        let g = neighbours_exact(&v, d, 5, 0.2, 2);
        // The index path with a search as wide as the data is exact too (600 vectors, ef 600).
        let wide = crate::index::IndexParams { ef_construction: 600, ef_search: 600, ..graph_index_params() };
        let h = neighbours_index(&v, d, 5, 0.2, &wide).unwrap();
        for (i, (a, b)) in g.iter().zip(&h).enumerate() {
            let ids = |r: &Vec<Edge>| r.iter().map(|e| e.to).collect::<Vec<_>>();
            assert_eq!(ids(a), ids(b), "row {i}");
            for (x, y) in a.iter().zip(b) {
                assert!((x.similarity - y.similarity).abs() < 1e-5, "row {i}: {x:?} vs {y:?}");
            }
        }
        assert_eq!(neighbours(&v, d, 5, 0.2, 2, 100, &wide).unwrap(), h);
        assert_eq!(neighbours(&v, d, 5, 0.2, 2, 1000, &wide).unwrap(), g);
        for i in [0usize, 255, 256, 599] {
            let mut all: Vec<Edge> = (0..n)
                .filter(|&j| j != i)
                .map(|j| Edge { to: j as u32, similarity: crate::compare::dot(&v[i * d..(i + 1) * d], &v[j * d..(j + 1) * d]) })
                .filter(|e| e.similarity >= 0.2)
                .collect();
            keep_best(&mut all, 5);
            let got: Vec<u32> = g[i].iter().map(|e| e.to).collect();
            let want: Vec<u32> = all.iter().map(|e| e.to).collect();
            assert_eq!(got, want, "row {i}");
        }
    }
}
