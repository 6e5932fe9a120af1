//! Clustering a photo collection into people: faces in, people (clusters of faces) out, with the
//! user's labels kept across runs.
//!
//! # Algorithm and why
//! Average-linkage agglomerative clustering over a k-nearest-neighbour graph
//! ([`agglomerative`](self) in this module), stopped at a similarity threshold:
//! - **Precision first.** Two groups merge only when the *mean* similarity over all their cross
//!   pairs reaches the threshold. Single-link methods (DBSCAN, connected components, Chinese
//!   whispers over a thresholded graph) chain: one look-alike pair or one blurry face bridges two
//!   people, which is the top complaint about photo managers. Average linkage needs the two
//!   groups to be close as a whole. HDBSCAN would also resist chaining but needs density
//!   estimates that are unreliable for people with 2–3 photos, the common case in LFW and in
//!   family libraries.
//! - **Exact and cheap.** For unit vectors the mean cross similarity is `(ΣA·ΣB)/(|A||B|)`,
//!   so a merge costs one dot product; the neighbour graph only proposes candidates (any pair of
//!   groups with mean ≥ t has a cross pair ≥ t).
//! - **Constraints fit naturally.** Cannot-links (two faces of one photo; "this face is not this
//!   person") make a merge forbidden, and clusters only grow, so a forbidden merge stays
//!   forbidden. Must-links (faces the user confirmed as one person) are starting clusters.
//! - **Deterministic.** The same faces in the same order give the same clusters (ties by index),
//!   so a full re-run equals a run from scratch.
//!
//! Groups smaller than [`ClusterParams::min_faces`] and without a user label are outliers, left
//! unassigned. Faces failing the quality gate are not clustered at all and are reported.
//!
//! [`store`] keeps a collection (faces, people, labels) in one SQLite file so runs are
//! incremental; [`metrics`] scores a clustering against true identities; [`gallery`] clusters
//! the faces enrolled in a gallery and reports split and mislabelled enrollments.

mod agglomerative;
pub mod gallery;
pub mod knn;
pub mod metrics;
pub mod store;

use serde::Serialize;

use crate::quality::{FaceQuality, QualityFailure, QualityGate};

pub use metrics::{evaluate, ClusterMetrics, Prf};
pub use store::{Collection, CollectionReport, FaceRecord, Person, PersonSummary};

/// What can go wrong in clustering and in the collection store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A parameter outside its documented range.
    #[error("invalid clustering parameter {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An embedding of the wrong length or with non-finite components.
    #[error("face {face}: {message}")]
    BadEmbedding {
        /// Index of the face in the input (or its face id in a collection).
        face: u64,
        /// What is wrong.
        message: String,
    },
    /// Embeddings of another model than the collection's.
    #[error("collection {path} holds embeddings of model {stored}, but this run uses {given}: use another --state file, or the model the collection was built with")]
    ModelMismatch {
        /// The collection file.
        path: String,
        /// The collection's model id.
        stored: String,
        /// The model id offered.
        given: String,
    },
    /// A person id that does not exist.
    #[error("no person {0} in the collection")]
    NoPerson(u64),
    /// A face id that does not exist.
    #[error("no face {0} in the collection")]
    NoFace(u64),
    /// The gallery could not be read (clustering its faces, [`gallery`]).
    #[error("{0}")]
    Gallery(#[from] crate::gallery::GalleryError),
    /// The nearest-neighbour index failed while building the neighbour graph (out of memory).
    #[error("neighbour graph: {0}")]
    Index(#[from] crate::index::IndexError),
    /// The collection file failed (cannot be opened, written, or is damaged).
    #[error("collection {path}: {message}")]
    Store {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Clustering parameters. Defaults were chosen by measurement on LFW (README "Clustering").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterParams {
    /// Merge threshold: two groups merge while the mean cosine similarity over all their cross
    /// pairs is ≥ this, in [-1, 1]. Default [`DEFAULT_THRESHOLD`].
    pub threshold: f32,
    /// Neighbours per face in the candidate graph (≥ 1). Default 32: on LFW, recall at the
    /// default threshold does not change above 32 (README "Clustering").
    pub neighbours: usize,
    /// A group needs at least this many faces (≥ 1) to be a person; smaller groups without a user
    /// label are left unassigned. Default 2.
    pub min_faces: usize,
    /// Two faces of the same photo are never one person (hard cannot-link). Default true; turn
    /// off for collages and contact sheets.
    pub same_photo_cannot_link: bool,
    /// Faces failing this gate are reported and not clustered. Default [`QualityGate::default`].
    pub quality_gate: QualityGate,
    /// Threads for the exact neighbour graph; 0 = all cores. Default 0. (The index path always
    /// searches on every core.)
    pub threads: usize,
    /// The neighbour graph is exact below this many faces and approximate from there on
    /// ([`knn`]). Default [`knn::EXACT_BELOW`].
    pub exact_below: usize,
    /// HNSW index parameters of the approximate graph (from `exact_below` faces on). Default
    /// [`knn::graph_index_params`]; [`knn`] explains the choice.
    pub graph_index: crate::index::IndexParams,
}

/// Default merge threshold (mean cross-pair cosine similarity). The calibrated pairwise
/// operating points of the default model on LFW are 0.166 (FAR 1e-2), 0.227 (FAR 1e-3) and 0.283
/// (FAR 1e-4); a group-mean test is stricter than a pair test, and the LFW sweep (README
/// "Clustering", `clustering_pr.svg`) reaches pairwise precision ≥ 0.99 from this value.
pub const DEFAULT_THRESHOLD: f32 = 0.35;

/// The default model's calibrated 1:1 threshold at FAR 1e-4 (`calibration/w600k_mbf-*.json`,
/// all pairs among LFW's 7,701 photos).
pub const DEFAULT_MODEL_THRESHOLD_AT_FAR_1E4: f32 = 0.282_585_92;

/// How far the merge threshold sits above the model's 1:1 threshold at FAR 1e-4: 0.067, so that
/// the default model gets [`DEFAULT_THRESHOLD`].
pub const MARGIN_OVER_FAR_1E4: f32 = DEFAULT_THRESHOLD - DEFAULT_MODEL_THRESHOLD_AT_FAR_1E4;

/// The default merge threshold for a model whose calibrated 1:1 threshold at FAR 1e-4 is
/// `threshold_at_far_1e4` (from [`crate::pipeline::FaceAnalyzer::threshold_at_far`]): that
/// threshold plus [`MARGIN_OVER_FAR_1E4`], clamped to [-1, 1]. This carries the LFW-measured
/// default to other models and to user calibrations on the same similarity scale.
pub fn threshold_for_model(threshold_at_far_1e4: f32) -> f32 {
    (threshold_at_far_1e4 + MARGIN_OVER_FAR_1E4).clamp(-1.0, 1.0)
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            threshold: DEFAULT_THRESHOLD,
            neighbours: 32,
            min_faces: 2,
            same_photo_cannot_link: true,
            quality_gate: QualityGate::default(),
            threads: 0,
            exact_below: knn::EXACT_BELOW,
            graph_index: knn::graph_index_params(),
        }
    }
}

impl ClusterParams {
    /// Checks every parameter is in range.
    ///
    /// # Errors
    /// [`ClusterError::InvalidParameter`] naming the parameter.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |name, message: String| Err(ClusterError::InvalidParameter { name, message });
        if !(-1.0..=1.0).contains(&self.threshold) {
            return bad("threshold", format!("{} is outside [-1, 1]", self.threshold));
        }
        if self.neighbours == 0 {
            return bad("neighbours", "must be ≥ 1".into());
        }
        if self.min_faces == 0 {
            return bad("min_faces", "must be ≥ 1".into());
        }
        if self.graph_index.connectivity < 2 || self.graph_index.ef_construction == 0 || self.graph_index.ef_search == 0 {
            return bad("graph_index", "connectivity must be ≥ 2, ef_construction and ef_search ≥ 1".into());
        }
        self.quality_gate.validate().map_err(|e| ClusterError::InvalidParameter { name: "quality_gate", message: e.to_string() })
    }
}

/// One face to cluster.
#[derive(Debug, Clone)]
pub struct FaceInput<'a> {
    /// Its embedding: unit vector, the same length for every face.
    pub vector: &'a [f32],
    /// The photo it comes from (any id; equal ids = same photo, for the cannot-link rule).
    pub photo: u64,
    /// Its quality, checked against [`ClusterParams::quality_gate`]; `None` = not measured (passes).
    pub quality: Option<FaceQuality>,
    /// The person the user confirmed it to be (must-link with every face confirmed as the same).
    pub person: Option<u64>,
    /// Persons the user said it is not (cannot-link with their confirmed faces).
    pub not_persons: Vec<u64>,
}

/// One cluster (a person).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterOut {
    /// Indices of the member faces in the input, ascending.
    pub members: Vec<usize>,
    /// Cosine similarity of each member to the cluster centroid (the normalised mean embedding),
    /// parallel to `members`, in [-1, 1].
    pub centroid_similarity: Vec<f32>,
    /// The user-confirmed person among its members, if any.
    pub person: Option<u64>,
}

/// The result of [`cluster`].
#[derive(Debug, Clone, Serialize)]
pub struct Clustering {
    /// People found, by size (largest first; ties by first member).
    pub clusters: Vec<ClusterOut>,
    /// Faces clustered but in no person (outliers: groups below `min_faces`), ascending.
    pub unassigned: Vec<usize>,
    /// Faces refused by the quality gate, with the failed measure, ascending.
    pub gated: Vec<(usize, QualityFailure)>,
}

impl Clustering {
    /// The cluster of each input face (`None`: unassigned or gated), for [`metrics::evaluate`].
    pub fn assignment(&self, n: usize) -> Vec<Option<usize>> {
        let mut a = vec![None; n];
        for (c, cl) in self.clusters.iter().enumerate() {
            for &m in &cl.members {
                if m < n {
                    a[m] = Some(c);
                }
            }
        }
        a
    }
}

/// Clusters `faces` into people.
///
/// # Errors
/// [`ClusterError::InvalidParameter`] for parameters out of range;
/// [`ClusterError::BadEmbedding`] for a vector of another length than the first, or with
/// non-finite components; [`ClusterError::Index`] when the HNSW index fails (with
/// [`ClusterParams::graph_index`], from `exact_below` faces on: invalid index parameters, out
/// of memory).
pub fn cluster(faces: &[FaceInput<'_>], params: &ClusterParams) -> Result<Clustering, ClusterError> {
    params.validate()?;
    let dim = faces.first().map_or(0, |f| f.vector.len());
    for (i, f) in faces.iter().enumerate() {
        if f.vector.len() != dim || dim == 0 {
            return Err(ClusterError::BadEmbedding { face: i as u64, message: format!("embedding of length {}, expected {dim}", f.vector.len()) });
        }
        if f.vector.iter().any(|x| !x.is_finite()) {
            return Err(ClusterError::BadEmbedding { face: i as u64, message: "non-finite embedding component".into() });
        }
    }
    // Quality gate first: refused faces are reported, never clustered.
    let mut gated = Vec::new();
    let mut kept: Vec<usize> = Vec::with_capacity(faces.len());
    for (i, f) in faces.iter().enumerate() {
        match f.quality.map(|q| params.quality_gate.check(&q)) {
            Some(Err(fail)) => gated.push((i, fail)),
            _ => kept.push(i),
        }
    }
    let mut flat = Vec::with_capacity(kept.len() * dim);
    for &i in &kept {
        flat.extend_from_slice(faces[i].vector);
    }
    let threads = if params.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { params.threads };
    let graph = knn::neighbours(&flat, dim, params.neighbours, params.threshold, threads, params.exact_below, &params.graph_index)?;
    let items: Vec<agglomerative::Item<'_>> = kept
        .iter()
        .map(|&i| agglomerative::Item { vector: faces[i].vector, photo: faces[i].photo, seed: faces[i].person, not_persons: &faces[i].not_persons })
        .collect();
    let groups = agglomerative::agglomerate(&items, dim, &graph, params.threshold, params.same_photo_cannot_link);
    let mut clusters = Vec::new();
    let mut unassigned = Vec::new();
    for g in groups {
        let members: Vec<usize> = g.iter().map(|&j| kept[j as usize]).collect();
        let person = members.iter().find_map(|&m| faces[m].person);
        if members.len() < params.min_faces && person.is_none() {
            unassigned.extend(members);
            continue;
        }
        let mut mean = vec![0f32; dim];
        for &m in &members {
            mean.iter_mut().zip(faces[m].vector).for_each(|(s, x)| *s += x);
        }
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        mean.iter_mut().for_each(|x| *x /= norm);
        let centroid_similarity = members.iter().map(|&m| crate::compare::dot(faces[m].vector, &mean)).collect();
        clusters.push(ClusterOut { members, centroid_similarity, person });
    }
    clusters.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then(a.members[0].cmp(&b.members[0])));
    unassigned.sort_unstable();
    Ok(Clustering { clusters, unassigned, gated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn input(v: &[f32], photo: u64) -> FaceInput<'_> {
        FaceInput { vector: v, photo, quality: None, person: None, not_persons: Vec::new() }
    }

    #[test]
    fn two_groups_and_an_outlier() {
        let vs = [unit(&[1.0, 0.1, 0.0]), unit(&[1.0, -0.1, 0.0]), unit(&[0.0, 1.0, 0.1]), unit(&[0.1, 1.0, 0.0]), unit(&[0.0, 0.0, 1.0])];
        let faces: Vec<FaceInput> = vs.iter().enumerate().map(|(i, v)| input(v, i as u64)).collect();
        let c = cluster(&faces, &ClusterParams { threshold: 0.5, ..Default::default() }).unwrap();
        let groups: Vec<Vec<usize>> = c.clusters.iter().map(|c| c.members.clone()).collect();
        assert_eq!(groups, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(c.unassigned, vec![4]);
    }

    #[test]
    fn cannot_link_same_photo_and_rejections() {
        let vs = [unit(&[1.0, 0.1]), unit(&[1.0, -0.1]), unit(&[1.0, 0.0])];
        // 0 and 1 in one photo: never together; 2 may join one of them.
        let faces = vec![input(&vs[0], 7), input(&vs[1], 7), input(&vs[2], 8)];
        let p = ClusterParams { threshold: 0.5, min_faces: 1, ..Default::default() };
        let c = cluster(&faces, &p).unwrap();
        for cl in &c.clusters {
            assert!(!(cl.members.contains(&0) && cl.members.contains(&1)), "{:?}", c.clusters);
        }
        let c = cluster(&faces, &ClusterParams { same_photo_cannot_link: false, ..p.clone() }).unwrap();
        assert_eq!(c.clusters.len(), 1);
        // Face 2 rejected from person 5, whose confirmed faces are 0 and 1.
        let mut faces = vec![input(&vs[0], 1), input(&vs[1], 2), input(&vs[2], 3)];
        faces[0].person = Some(5);
        faces[1].person = Some(5);
        faces[2].not_persons = vec![5];
        let c = cluster(&faces, &p).unwrap();
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.clusters[0].members, vec![0, 1]);
        assert_eq!(c.clusters[0].person, Some(5));
        assert_eq!(c.clusters[1].members, vec![2]);
    }
}
