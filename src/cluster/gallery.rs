//! Clustering the faces already enrolled in a gallery, to audit the enrollments: the stored
//! embeddings are clustered exactly like a photo collection's ([`super::cluster`], same
//! parameters), with no image and no detection, and the people found are compared with the
//! gallery's identities.
//!
//! - **Same photo.** Two faces enrolled from one source image (equal content SHA-256) are two
//!   different people (the hard cannot-link of [`ClusterParams::same_photo_cannot_link`]), unless
//!   their boxes overlap (IoU ≥ [`SAME_FACE_IOU`]): then they are the *same* face enrolled twice,
//!   clustered once (the lowest face id stands for the others, which follow it) and reported in
//!   [`GalleryClustering::duplicate_faces`]. Faces enrolled without a source (empty hash) have no
//!   such constraint.
//! - **Identities are not labels here.** The identities are what is being checked, so they are not
//!   used as must-links or cannot-links: clustering uses the embeddings alone.
//! - **What is reported.** Beside the people and the unassigned faces:
//!   [`GalleryClustering::same_person`] (one person holding faces of two or more identities:
//!   probably one person enrolled under several names, a *split enrollment*, or a face enrolled
//!   under the wrong name) and [`GalleryClustering::mixed_identities`] (an identity whose faces
//!   fall into two or more people: probably a *mislabelled enrollment*, some of its faces being
//!   someone else), plus the agreement of the clustering with the identities
//!   ([`super::metrics::evaluate`], identities as the truth).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{cluster, ClusterError, ClusterMetrics, ClusterParams, FaceInput};
use crate::gallery::{FaceRecord, Gallery};

/// Two faces of one source image whose boxes overlap at least this much (intersection over union)
/// are one face enrolled twice. 0.5 is the usual detection-matching criterion (PASCAL VOC), and the
/// one the collection store uses to match re-detected faces.
pub const SAME_FACE_IOU: f32 = crate::gallery::DUPLICATE_FACE_IOU;

/// One enrolled face, as the clustering reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GalleryFace {
    /// Face id in the gallery.
    pub face_id: i64,
    /// Identity it is enrolled under.
    pub identity_id: i64,
    /// That identity's name.
    pub identity: String,
    /// SHA-256 (hex) of its source image, empty when unknown.
    pub image_sha256: String,
    /// Box `[x1, y1, x2, y2]` in the source image, pixels (zeros when unknown).
    pub bbox: [f32; 4],
    /// Cosine similarity to its person's centroid (normalised mean embedding), in [-1, 1];
    /// `None` for unassigned and refused faces.
    pub similarity: Option<f32>,
}

/// How many faces of one identity a person holds.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityShare {
    /// Identity id.
    pub identity_id: i64,
    /// Its name.
    pub name: String,
    /// Its faces in this person.
    pub faces: usize,
    /// Its faces in the gallery (all of them, clustered or not).
    pub of: usize,
}

/// One person found among the enrolled faces.
#[derive(Debug, Clone, Serialize)]
pub struct GalleryPerson {
    /// Person number, 1-based, by size (largest first). Not stored: numbers hold for this run only.
    pub person: usize,
    /// Identities among its faces, most faces first (ties by id).
    pub identities: Vec<IdentityShare>,
    /// Its faces, by face id.
    pub faces: Vec<GalleryFace>,
}

/// A face the quality gate refused.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedFace {
    /// The face.
    #[serde(flatten)]
    pub face: GalleryFace,
    /// The measure that failed, with its value and limit.
    pub reason: String,
}

/// A person holding faces of several identities.
#[derive(Debug, Clone, Serialize)]
pub struct SamePerson {
    /// The person number.
    pub person: usize,
    /// The identities, most faces first. An identity with all its faces here (`faces == of`)
    /// is probably the same person as the others (split enrollment); one with only a few of its
    /// faces here probably has those faces mislabelled.
    pub identities: Vec<IdentityShare>,
    /// Mean cosine similarity over the pairs of this person's faces that belong to different
    /// identities, in [-1, 1].
    pub similarity: f32,
}

/// Where an identity's faces went.
#[derive(Debug, Clone, Serialize)]
pub struct IdentitySpread {
    /// Person number.
    pub person: usize,
    /// The identity's faces in that person, by id.
    pub faces: Vec<i64>,
    /// The identity the person is mostly made of (most faces; ties by id).
    pub majority: String,
}

/// An identity whose faces fall into several people.
#[derive(Debug, Clone, Serialize)]
pub struct MixedIdentity {
    /// Identity id.
    pub identity_id: i64,
    /// Its name.
    pub name: String,
    /// Its faces in the gallery.
    pub faces: usize,
    /// The people holding its faces, most of its faces first (ties by person number).
    pub people: Vec<IdentitySpread>,
    /// Its faces left unassigned, by id.
    pub unassigned: Vec<i64>,
}

/// One face of one image enrolled more than once (same source SHA-256, boxes overlapping by
/// IoU ≥ [`SAME_FACE_IOU`]).
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateFace {
    /// The face ids, ascending (the first one was clustered; the others follow it).
    pub face_ids: Vec<i64>,
    /// Their identities' names, in the same order.
    pub identities: Vec<String>,
}

/// The result of [`cluster_gallery`].
#[derive(Debug, Clone, Serialize)]
pub struct GalleryClustering {
    /// Faces in the gallery.
    pub faces: usize,
    /// Identities with at least one face.
    pub identities: usize,
    /// People found, largest first.
    pub people: Vec<GalleryPerson>,
    /// Faces clustered but in no person (groups below `min_faces`), by face id.
    pub unassigned: Vec<GalleryFace>,
    /// Faces refused by the quality gate (their stored quality), by face id. JSON key
    /// `refused_by_quality`, as for photo folders.
    #[serde(rename = "refused_by_quality")]
    pub refused: Vec<RefusedFace>,
    /// People holding faces of several identities.
    pub same_person: Vec<SamePerson>,
    /// Identities whose faces fall into several people.
    pub mixed_identities: Vec<MixedIdentity>,
    /// Faces enrolled twice from the same place of the same image.
    pub duplicate_faces: Vec<DuplicateFace>,
    /// Agreement of the people with the identities, the identities taken as the truth: pairwise
    /// precision below 1 means people holding several identities, recall below 1 identities split
    /// over people or left unassigned. Refused faces are not scored.
    pub agreement: ClusterMetrics,
}

/// Clusters the enrolled faces of `gallery` with `params` and compares the people with the
/// identities (see the module docs). `params.threshold` is on the similarity scale of the
/// gallery's model (for a default, [`super::threshold_for_model`] of that model's calibration).
///
/// # Errors
/// [`ClusterError::Gallery`] when the store cannot be read; [`ClusterError::InvalidParameter`];
/// [`ClusterError::BadEmbedding`] for a stored embedding of the wrong length or non-finite
/// (`face` is then the face id); [`ClusterError::Index`] from the neighbour index.
pub fn cluster_gallery(gallery: &Gallery, params: &ClusterParams) -> Result<GalleryClustering, ClusterError> {
    params.validate()?;
    let names: HashMap<i64, String> = gallery.identities()?.into_iter().map(|i| (i.id, i.name)).collect();
    let stored = gallery.faces_with_embeddings()?;
    let dim = gallery.dim();
    for (f, v) in &stored {
        if v.len() != dim {
            return Err(ClusterError::BadEmbedding { face: f.id as u64, message: format!("stored embedding of length {}, the gallery's is {dim}", v.len()) });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(ClusterError::BadEmbedding { face: f.id as u64, message: "non-finite stored embedding component".into() });
        }
    }
    audit(&stored, &names, params)
}

/// [`cluster_gallery`] on faces already read (`stored`: records with embeddings, in id order;
/// `names`: identity id → name).
fn audit(stored: &[(FaceRecord, Vec<f32>)], names: &HashMap<i64, String>, params: &ClusterParams) -> Result<GalleryClustering, ClusterError> {
    let name = |id: i64| names.get(&id).cloned().unwrap_or_else(|| format!("id:{id}"));
    // The same face of one image enrolled more than once: the first stands for the others.
    let mut stand_in: Vec<usize> = (0..stored.len()).collect();
    let mut by_image: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (f, _)) in stored.iter().enumerate() {
        if !f.image_sha256.is_empty() {
            by_image.entry(f.image_sha256.as_str()).or_default().push(i);
        }
    }
    let mut copies: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut images: Vec<(&str, Vec<usize>)> = by_image.into_iter().collect();
    images.sort_unstable();
    for (_, idx) in &images {
        for (a, &i) in idx.iter().enumerate() {
            if stand_in[i] != i {
                continue;
            }
            for &j in &idx[a + 1..] {
                if stand_in[j] == j && crate::detect::box_iou(&stored[i].0.bbox, &stored[j].0.bbox) >= SAME_FACE_IOU {
                    stand_in[j] = i;
                    copies.entry(i).or_default().push(j);
                }
            }
        }
    }
    // Photo ids for the cannot-link: one per source image; faces without a source get their own.
    let mut photo_of: HashMap<&str, u64> = HashMap::new();
    let reps: Vec<usize> = (0..stored.len()).filter(|&i| stand_in[i] == i).collect();
    let faces: Vec<FaceInput<'_>> = reps
        .iter()
        .map(|&i| {
            let (f, v) = &stored[i];
            let photo = if f.image_sha256.is_empty() {
                u64::MAX - i as u64
            } else {
                let next = photo_of.len() as u64;
                *photo_of.entry(f.image_sha256.as_str()).or_insert(next)
            };
            FaceInput { vector: v, photo, quality: f.quality, person: None, not_persons: Vec::new() }
        })
        .collect();
    let c = cluster(&faces, params)?;

    let mut total: HashMap<i64, usize> = HashMap::new();
    for (f, _) in stored {
        *total.entry(f.identity).or_default() += 1;
    }
    let out_face = |i: usize, similarity: Option<f32>| {
        let f = &stored[i].0;
        GalleryFace { face_id: f.id, identity_id: f.identity, identity: name(f.identity), image_sha256: f.image_sha256.clone(), bbox: f.bbox, similarity }
    };
    // Expands a clustered face to itself and its copies.
    let with_copies = |r: usize| -> Vec<usize> {
        let mut v = vec![reps[r]];
        v.extend(copies.get(&reps[r]).into_iter().flatten().copied());
        v
    };
    let mut person_of: Vec<Option<usize>> = vec![None; stored.len()];
    let mut people = Vec::with_capacity(c.clusters.len());
    let mut member_rows: Vec<Vec<usize>> = Vec::with_capacity(c.clusters.len());
    for (p, cl) in c.clusters.iter().enumerate() {
        let mut members = Vec::new();
        for (&r, &s) in cl.members.iter().zip(&cl.centroid_similarity) {
            for i in with_copies(r) {
                person_of[i] = Some(p + 1);
                // A copy has its own embedding: its own similarity to the centroid.
                let sim = if i == reps[r] {
                    s
                } else {
                    let centroid = centroid(cl.members.iter().map(|&m| faces[m].vector), stored[i].1.len());
                    crate::compare::dot(&stored[i].1, &centroid)
                };
                members.push((i, sim));
            }
        }
        members.sort_by_key(|&(i, _)| stored[i].0.id);
        member_rows.push(members.iter().map(|&(i, _)| i).collect());
        let mut count: HashMap<i64, usize> = HashMap::new();
        for &(i, _) in &members {
            *count.entry(stored[i].0.identity).or_default() += 1;
        }
        let mut identities: Vec<IdentityShare> =
            count.into_iter().map(|(id, n)| IdentityShare { identity_id: id, name: name(id), faces: n, of: total.get(&id).copied().unwrap_or(n) }).collect();
        identities.sort_by(|a, b| b.faces.cmp(&a.faces).then(a.identity_id.cmp(&b.identity_id)));
        let faces_out = members.iter().map(|&(i, s)| out_face(i, Some(s))).collect();
        people.push(GalleryPerson { person: p + 1, identities, faces: faces_out });
    }
    let mut unassigned: Vec<usize> = c.unassigned.iter().flat_map(|&r| with_copies(r)).collect();
    unassigned.sort_by_key(|&i| stored[i].0.id);
    let mut refused: Vec<(usize, String)> = c.gated.iter().flat_map(|(r, why)| with_copies(*r).into_iter().map(move |i| (i, why.to_string()))).collect();
    refused.sort_by_key(|(i, _)| stored[*i].0.id);

    // People with several identities, and the mean cross-identity similarity inside them.
    let mut same_person = Vec::new();
    for (p, rows) in people.iter().zip(&member_rows) {
        if p.identities.len() < 2 {
            continue;
        }
        let mut sums: BTreeMap<i64, (Vec<f32>, usize)> = BTreeMap::new();
        for &i in rows {
            let (f, v) = &stored[i];
            let e = sums.entry(f.identity).or_insert_with(|| (vec![0.0; v.len()], 0));
            e.0.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            e.1 += 1;
        }
        let groups: Vec<&(Vec<f32>, usize)> = sums.values().collect();
        let (mut sim, mut pairs) = (0f64, 0f64);
        for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                sim += crate::compare::dot(&groups[a].0, &groups[b].0) as f64;
                pairs += (groups[a].1 * groups[b].1) as f64;
            }
        }
        same_person.push(SamePerson { person: p.person, identities: p.identities.clone(), similarity: (sim / pairs.max(1.0)) as f32 });
    }

    // Identities spread over several people.
    let majority: HashMap<usize, String> = people.iter().map(|p| (p.person, p.identities.first().map(|s| s.name.clone()).unwrap_or_default())).collect();
    let lone: std::collections::HashSet<usize> = unassigned.iter().copied().collect();
    let mut spread: BTreeMap<i64, (BTreeMap<usize, Vec<i64>>, Vec<i64>)> = BTreeMap::new();
    for (i, (f, _)) in stored.iter().enumerate() {
        let e = spread.entry(f.identity).or_default();
        match person_of[i] {
            Some(p) => e.0.entry(p).or_default().push(f.id),
            None if lone.contains(&i) => e.1.push(f.id),
            None => {}
        }
    }
    let mut mixed_identities = Vec::new();
    for (id, (in_people, alone)) in spread {
        if in_people.len() < 2 {
            continue;
        }
        let mut ps: Vec<IdentitySpread> =
            in_people.into_iter().map(|(p, faces)| IdentitySpread { person: p, faces, majority: majority.get(&p).cloned().unwrap_or_default() }).collect();
        ps.sort_by(|a, b| b.faces.len().cmp(&a.faces.len()).then(a.person.cmp(&b.person)));
        mixed_identities.push(MixedIdentity { identity_id: id, name: name(id), faces: total.get(&id).copied().unwrap_or(0), people: ps, unassigned: alone });
    }
    mixed_identities.sort_by(|a, b| a.name.cmp(&b.name).then(a.identity_id.cmp(&b.identity_id)));

    let duplicate_faces = copies
        .iter()
        .map(|(&first, rest)| {
            let mut ids: Vec<usize> = std::iter::once(first).chain(rest.iter().copied()).collect();
            ids.sort_by_key(|&i| stored[i].0.id);
            DuplicateFace { face_ids: ids.iter().map(|&i| stored[i].0.id).collect(), identities: ids.iter().map(|&i| name(stored[i].0.identity)).collect() }
        })
        .collect();

    // Agreement with the identities, over the faces that were clustered (refused ones are not).
    let refused_set: std::collections::HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
    let scored: Vec<usize> = (0..stored.len()).filter(|i| !refused_set.contains(i)).collect();
    let predicted: Vec<Option<usize>> = scored.iter().map(|&i| person_of[i]).collect();
    let truth: Vec<i64> = scored.iter().map(|&i| stored[i].0.identity).collect();
    let agreement = super::evaluate(&predicted, &truth);

    Ok(GalleryClustering {
        faces: stored.len(),
        identities: total.len(),
        people,
        unassigned: unassigned.into_iter().map(|i| out_face(i, None)).collect(),
        refused: refused.into_iter().map(|(i, reason)| RefusedFace { face: out_face(i, None), reason }).collect(),
        same_person,
        mixed_identities,
        duplicate_faces,
        agreement,
    })
}

/// The normalised mean of `vectors` (each of length `dim`).
fn centroid<'a>(vectors: impl Iterator<Item = &'a [f32]>, dim: usize) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for v in vectors {
        mean.iter_mut().zip(v).for_each(|(s, x)| *s += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    mean.iter_mut().for_each(|x| *x /= norm);
    mean
}
