//! Average-linkage agglomerative clustering over a neighbour graph, with cannot-link constraints
//! and must-link seeds.
//!
//! The linkage of two clusters A and B is the mean cosine similarity over all |A|·|B| cross
//! pairs. For unit vectors that mean is exactly `(ΣA · ΣB) / (|A|·|B|)`, so each cluster keeps
//! the sum of its embeddings and a linkage costs one dot product, whatever the cluster sizes.
//! The neighbour graph only says which clusters are *candidates*: if A and B have linkage ≥ t,
//! at least one cross pair has similarity ≥ t, so a graph holding every pair ≥ t loses no merge.
//! (With the per-face cap of k neighbours, a merge whose only strong pairs all lie beyond some
//! face's k-th neighbour can be missed; that costs recall, never precision.)
//!
//! Merges go best first (a max-heap with lazy deletion, ties by cluster index) until the best
//! remaining linkage is below the threshold. A merge that a constraint forbids is dropped; since
//! clusters only grow, it stays forbidden.

use std::collections::{BinaryHeap, HashMap, HashSet};

use super::knn::Edge;

/// One face as the algorithm sees it.
pub(crate) struct Item<'a> {
    pub vector: &'a [f32],
    pub photo: u64,
    pub seed: Option<u64>,
    pub not_persons: &'a [u64],
}

#[derive(Default)]
struct Cluster {
    sum: Vec<f32>,
    size: usize,
    members: Vec<u32>,
    photos: HashSet<u64>,
    seed: Option<u64>,
    not_persons: HashSet<u64>,
    adj: HashSet<u32>,
    version: u32,
    alive: bool,
}

#[derive(PartialEq)]
struct Candidate {
    linkage: f32,
    a: u32,
    b: u32,
    va: u32,
    vb: u32,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.linkage.total_cmp(&o.linkage).then_with(|| (o.a, o.b).cmp(&(self.a, self.b)))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

fn linkage(a: &Cluster, b: &Cluster) -> f32 {
    crate::compare::dot(&a.sum, &b.sum) / (a.size as f32 * b.size as f32)
}

fn allowed(a: &Cluster, b: &Cluster, same_photo_rule: bool) -> bool {
    if let (Some(x), Some(y)) = (a.seed, b.seed) {
        if x != y {
            return false;
        }
    }
    if a.seed.is_some_and(|s| b.not_persons.contains(&s)) || b.seed.is_some_and(|s| a.not_persons.contains(&s)) {
        return false;
    }
    if same_photo_rule {
        let (small, big) = if a.photos.len() <= b.photos.len() { (&a.photos, &b.photos) } else { (&b.photos, &a.photos) };
        if small.iter().any(|p| big.contains(p)) {
            return false;
        }
    }
    true
}

/// Clusters `items` (unit vectors of length `dim`) over `graph` (edges per item). Returns the
/// member lists of the final clusters (indices into `items`, ascending), clusters ordered by their
/// smallest member.
///
/// Seeds: items with the same `seed` start in one cluster (must-link); clusters with different
/// seeds never merge; an item whose `not_persons` holds a seed never joins that seed's cluster.
/// With `same_photo_rule`, two items of the same `photo` never share a cluster (items of one
/// photo that share a seed are the user's explicit choice and stay together).
pub(crate) fn agglomerate(items: &[Item<'_>], dim: usize, graph: &[Vec<Edge>], threshold: f32, same_photo_rule: bool) -> Vec<Vec<u32>> {
    let n = items.len();
    // Cluster of each item, starting from the seeds.
    let mut owner: Vec<u32> = (0..n as u32).collect();
    let mut seed_cluster: HashMap<u64, u32> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(s) = it.seed {
            let c = *seed_cluster.entry(s).or_insert(i as u32);
            owner[i] = c;
        }
    }
    let mut clusters: Vec<Cluster> = (0..n)
        .map(|_| Cluster::default())
        .collect();
    for (i, it) in items.iter().enumerate() {
        let c = &mut clusters[owner[i] as usize];
        if c.sum.is_empty() {
            c.sum = vec![0.0; dim];
        }
        c.sum.iter_mut().zip(it.vector).for_each(|(s, x)| *s += x);
        c.size += 1;
        c.members.push(i as u32);
        c.photos.insert(it.photo);
        c.seed = it.seed;
        c.not_persons.extend(it.not_persons.iter().copied());
        c.alive = true;
    }
    for (i, edges) in graph.iter().enumerate().take(n) {
        let a = owner[i];
        for e in edges {
            if (e.to as usize) < n && e.similarity >= threshold {
                let b = owner[e.to as usize];
                if a != b {
                    clusters[a as usize].adj.insert(b);
                    clusters[b as usize].adj.insert(a);
                }
            }
        }
    }
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Candidate>, clusters: &[Cluster], a: u32, b: u32| {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        let (ca, cb) = (&clusters[a as usize], &clusters[b as usize]);
        let l = linkage(ca, cb);
        if l >= threshold && allowed(ca, cb, same_photo_rule) {
            heap.push(Candidate { linkage: l, a, b, va: ca.version, vb: cb.version });
        }
    };
    for a in 0..n as u32 {
        if !clusters[a as usize].alive {
            continue;
        }
        let mut adj: Vec<u32> = clusters[a as usize].adj.iter().copied().filter(|&b| b > a).collect();
        adj.sort_unstable();
        for b in adj {
            push(&mut heap, &clusters, a, b);
        }
    }
    while let Some(c) = heap.pop() {
        let (ca, cb) = (&clusters[c.a as usize], &clusters[c.b as usize]);
        if !ca.alive || !cb.alive || ca.version != c.va || cb.version != c.vb {
            continue;
        }
        // Merge the smaller into the larger (fewer set moves); ties: b into a.
        let (keep, gone) = if cb.size > ca.size { (c.b, c.a) } else { (c.a, c.b) };
        let mut g = std::mem::replace(
            &mut clusters[gone as usize],
            Cluster::default(),
        );
        for &x in &g.adj {
            if x != keep {
                let other = &mut clusters[x as usize];
                other.adj.remove(&gone);
                other.adj.insert(keep);
            }
        }
        {
            let k = &mut clusters[keep as usize];
            k.sum.iter_mut().zip(&g.sum).for_each(|(s, x)| *s += x);
            k.size += g.size;
            k.members.append(&mut g.members);
            k.photos.extend(g.photos.drain());
            if k.seed.is_none() {
                k.seed = g.seed;
            }
            k.not_persons.extend(g.not_persons.drain());
            k.adj.extend(g.adj.drain());
            k.adj.remove(&keep);
            k.adj.remove(&gone);
            k.version += 1;
        }
        let mut adj: Vec<u32> = clusters[keep as usize].adj.iter().copied().collect();
        adj.sort_unstable();
        for x in adj {
            push(&mut heap, &clusters, keep, x);
        }
    }
    let mut out: Vec<Vec<u32>> = clusters
        .into_iter()
        .filter(|c| c.alive)
        .map(|mut c| {
            c.members.sort_unstable();
            c.members
        })
        .collect();
    out.sort_unstable_by_key(|m| m[0]);
    out
}
