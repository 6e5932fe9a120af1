//! Clustering quality against ground-truth identities: pairwise and BCubed precision, recall and
//! F1.
//!
//! Conventions (stated in every report):
//! - an unassigned face counts as a cluster of its own (it is in no pair, and its BCubed
//!   precision is 1);
//! - pairwise: over all unordered pairs of faces, a pair is *predicted* when both faces are in
//!   the same cluster and *true* when both have the same identity. Precision = true predicted /
//!   predicted, recall = true predicted / true; with no predicted pair precision is 1, with no
//!   true pair recall is 1;
//! - BCubed (Bagga & Baldwin 1998; Amigó et al. 2009): for each face, precision = the share of
//!   its cluster (itself included) with its identity, recall = the share of its identity (itself
//!   included) in its cluster; both averaged over faces.

use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;

/// Precision, recall and F1 (harmonic mean; 0 when both are 0), each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

impl Prf {
    fn new(precision: f64, recall: f64) -> Self {
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        Prf { precision, recall, f1 }
    }
}

/// Scores of one clustering against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterMetrics {
    /// Faces scored.
    pub faces: usize,
    /// Distinct true identities among them.
    pub identities: usize,
    /// Clusters with ≥ 1 scored face (unassigned faces not counted).
    pub clusters: usize,
    /// Share of scored faces left unassigned, in [0, 1].
    pub unassigned_share: f64,
    /// Pairwise precision / recall / F1.
    pub pairwise: Prf,
    /// BCubed precision / recall / F1.
    pub bcubed: Prf,
    /// Predicted pairs (both faces in one cluster).
    pub predicted_pairs: u64,
    /// True pairs (both faces of one identity).
    pub true_pairs: u64,
    /// Predicted pairs that are true.
    pub correct_pairs: u64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Scores `predicted` (a cluster per face, `None` = unassigned) against `truth` (an identity per
/// face). The two slices are parallel; extra elements of the longer one are ignored.
pub fn evaluate<C: Eq + Hash + Clone, T: Eq + Hash + Clone>(predicted: &[Option<C>], truth: &[T]) -> ClusterMetrics {
    let n = predicted.len().min(truth.len());
    // Unassigned faces become singleton clusters, keyed by their position.
    #[derive(PartialEq, Eq, Hash, Clone)]
    enum Key<C> {
        Cluster(C),
        Alone(usize),
    }
    let key = |i: usize| match &predicted[i] {
        Some(c) => Key::Cluster(c.clone()),
        None => Key::Alone(i),
    };
    let mut cluster_size: HashMap<Key<C>, u64> = HashMap::new();
    let mut class_size: HashMap<T, u64> = HashMap::new();
    let mut joint: HashMap<(Key<C>, T), u64> = HashMap::new();
    for (i, t) in truth.iter().enumerate().take(n) {
        *cluster_size.entry(key(i)).or_default() += 1;
        *class_size.entry(t.clone()).or_default() += 1;
        *joint.entry((key(i), t.clone())).or_default() += 1;
    }
    let predicted_pairs: u64 = cluster_size.values().map(|&s| pairs(s)).sum();
    let true_pairs: u64 = class_size.values().map(|&s| pairs(s)).sum();
    let correct_pairs: u64 = joint.values().map(|&s| pairs(s)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let pairwise = Prf::new(ratio(correct_pairs, predicted_pairs), ratio(correct_pairs, true_pairs));
    // BCubed: each face in cell (cluster, class) of size m has precision m/|cluster| and recall
    // m/|class|; summing over the m faces of a cell gives m²/|cluster| and m²/|class|.
    let (mut bp, mut br) = (0.0f64, 0.0f64);
    for ((c, t), &m) in &joint {
        let m = m as f64;
        bp += m * m / cluster_size[c] as f64;
        br += m * m / class_size[t] as f64;
    }
    let bcubed = if n == 0 { Prf::new(1.0, 1.0) } else { Prf::new(bp / n as f64, br / n as f64) };
    let unassigned = predicted[..n].iter().filter(|p| p.is_none()).count();
    ClusterMetrics {
        faces: n,
        identities: class_size.len(),
        clusters: cluster_size.keys().filter(|k| matches!(k, Key::Cluster(_))).count(),
        unassigned_share: if n == 0 { 0.0 } else { unassigned as f64 / n as f64 },
        pairwise,
        bcubed,
        predicted_pairs,
        true_pairs,
        correct_pairs,
    }
}
