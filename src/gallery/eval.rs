//! Identification evaluation on a labelled photo set (LFW protocol), through the real
//! [`Gallery`] API: galleries are built on disk, identities removed with
//! [`Gallery::remove_identity`], probes searched with [`Gallery::identify`].
//!
//! Protocol ([`evaluate`]), over identities with their images in a fixed order (file name):
//! - **gallery**: the first image of every identity with ≥ 2 images, plus the only image of every
//!   single-image identity (a distractor: enrolled, never searched for);
//! - **probes**: the remaining images of the identities with ≥ 2 images;
//! - **rank-1 / rank-5 accuracy** (closed set): the probe's identity is the best (among the best
//!   5) identity returned;
//! - **FNIR** at threshold `t` (mated searches): the share of probes *not* decided
//!   [`Decision::Match`] to their own identity (a miss, a wrong identity, `unknown` or `ambiguous`);
//! - **FPIR** at `t` (non-mated searches): the mated identities are split in two halves
//!   (alternately, by name); for each half, the gallery with that half's identities removed is
//!   searched with that half's probes, and a false positive is any decision other than
//!   [`Decision::Unknown`] (someone returned at or above threshold). Every probe is thus
//!   searched once mated and once non-mated;
//! - **scoring** (max over faces vs mean template): with one enrolled face per identity both are
//!   the same, so they are compared on a second protocol with several faces per identity:
//!   identities with ≥ 4 images enroll their first ⌊n/2⌋ images, the rest are probes, and the
//!   first image of every other identity is a distractor.
//!
//! A probe or gallery image without an embedding (no face found) stays in every denominator: an
//! identity whose gallery image has no face cannot be enrolled, and its probes count as misses;
//! a probe without a face is a miss (rank-1, FNIR) and cannot be a false positive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{Decision, Gallery, GalleryOptions, IdentifyParams, IdentityRef, NewFace, Scoring};
use crate::compare::Threshold;
use crate::embed::{Embedding, ModelId};

/// One labelled image and its embedding (`None`: no usable face).
#[derive(Debug, Clone)]
pub struct LabelledEmbedding {
    /// Identity label (LFW: the folder name).
    pub identity: String,
    /// The image.
    pub path: PathBuf,
    /// Its embedding, L2-normalized.
    pub embedding: Option<Vec<f32>>,
}

/// Rates of one scoring on one protocol.
#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    /// Probes searched (mated).
    pub probes: usize,
    /// Rank-1 accuracy in [0, 1].
    pub rank1: f64,
    /// Rank-5 accuracy in [0, 1].
    pub rank5: f64,
    /// FNIR at the threshold, in [0, 1].
    pub fnir: f64,
    /// Mated probes decided `ambiguous`.
    pub ambiguous: usize,
}

/// The identification report.
#[derive(Debug, Clone, Serialize)]
pub struct IdentificationReport {
    /// Model of the embeddings.
    pub model: ModelId,
    /// The operating point used.
    pub threshold: Threshold,
    /// The ambiguity margin used.
    pub ambiguity_margin: f32,
    /// Identities with ≥ 2 images (enrolled with their first, searched with the rest).
    pub mated_identities: usize,
    /// Single-image identities enrolled as distractors.
    pub distractors: usize,
    /// Faces enrolled in the full gallery.
    pub gallery_faces: usize,
    /// Gallery images without a face (their identity is not enrolled).
    pub gallery_no_face: usize,
    /// Probe images without a face (counted as misses).
    pub probes_no_face: usize,
    /// Rates with one face per identity (max and mean scoring coincide here).
    pub single: Rates,
    /// Non-mated searches.
    pub non_mated_probes: usize,
    /// FPIR at the threshold, in [0, 1].
    pub fpir: f64,
    /// Non-mated probes decided `ambiguous` (counted in FPIR).
    pub ambiguous_non_mated: usize,
    /// Second protocol (several faces per identity): identities used.
    pub multi_identities: usize,
    /// Second protocol: faces enrolled (with distractors).
    pub multi_gallery_faces: usize,
    /// Second protocol, max over faces.
    pub multi_max: Rates,
    /// Second protocol, mean template.
    pub multi_mean: Rates,
    /// Wall time of the searches (galleries built and searched), seconds.
    pub seconds: f64,
}

fn group(items: &[LabelledEmbedding]) -> BTreeMap<&str, Vec<&LabelledEmbedding>> {
    let mut by: BTreeMap<&str, Vec<&LabelledEmbedding>> = BTreeMap::new();
    for it in items {
        by.entry(it.identity.as_str()).or_default().push(it);
    }
    for v in by.values_mut() {
        v.sort_by(|a, b| a.path.cmp(&b.path));
    }
    by
}

fn build(dir: &Path, model: &ModelId, dim: usize, enrolled: &[(&str, &[f32])]) -> crate::Result<Gallery> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| super::GalleryError::Io { path: dir.to_path_buf(), source })?;
    }
    let g = Gallery::create(dir, model, dim, GalleryOptions::default())?;
    let mut ids = BTreeMap::new();
    let mut faces = Vec::with_capacity(enrolled.len());
    for (name, v) in enrolled {
        let id = match ids.get(name) {
            Some(id) => *id,
            None => {
                let id = g.add_identity(name, serde_json::Value::Null)?.id;
                ids.insert(*name, id);
                id
            }
        };
        faces.push((id, NewFace { embedding: Embedding { model: model.clone(), vector: v.to_vec() }, image_sha256: String::new(), bbox: [0.0; 4], quality: None, crop: None }));
    }
    g.enroll_many(faces)?;
    Ok(g)
}

fn mated_rates(g: &Gallery, model: &ModelId, probes: &[(&str, Option<&[f32]>)], params: &IdentifyParams) -> crate::Result<Rates> {
    let (mut r1, mut r5, mut miss, mut amb) = (0usize, 0usize, 0usize, 0usize);
    for (name, v) in probes {
        let Some(v) = v else {
            miss += 1;
            continue;
        };
        let id = g.identify(&Embedding { model: model.clone(), vector: v.to_vec() }, params)?;
        let pos = id.matches.iter().position(|m| m.name == *name);
        r1 += usize::from(pos == Some(0));
        r5 += usize::from(pos.is_some_and(|p| p < 5));
        if !(id.decision == Decision::Match && pos == Some(0)) {
            miss += 1;
        }
        amb += usize::from(id.decision == Decision::Ambiguous);
    }
    let n = probes.len().max(1) as f64;
    Ok(Rates { probes: probes.len(), rank1: r1 as f64 / n, rank5: r5 as f64 / n, fnir: miss as f64 / n, ambiguous: amb })
}

/// Runs the protocol (module docs) with galleries in `work_dir` (created, and removed at the
/// end). `progress(message)` reports each stage.
///
/// # Errors
/// [`crate::Error::Gallery`] when a gallery cannot be built or searched;
/// [`crate::Error::InvalidParameter`] when there is no identity with two images or the
/// embeddings have different lengths.
pub fn evaluate(
    items: &[LabelledEmbedding],
    model: &ModelId,
    threshold: &Threshold,
    ambiguity_margin: f32,
    work_dir: &Path,
    mut progress: impl FnMut(&str),
) -> crate::Result<IdentificationReport> {
    let start = Instant::now();
    let dim = items.iter().find_map(|i| i.embedding.as_ref().map(Vec::len)).unwrap_or(0);
    if items.iter().any(|i| i.embedding.as_ref().is_some_and(|e| e.len() != dim)) {
        return Err(crate::Error::InvalidParameter { name: "embeddings", message: "embeddings of different lengths".into() });
    }
    let by = group(items);
    let mated: Vec<&str> = by.iter().filter(|(_, v)| v.len() >= 2).map(|(k, _)| *k).collect();
    if mated.is_empty() || dim == 0 {
        return Err(crate::Error::InvalidParameter { name: "identities", message: "no identity with two images and a face".into() });
    }
    let mut params = IdentifyParams::new(threshold.clone());
    params.ambiguity_margin = ambiguity_margin;
    params.top_k = 5;

    // Protocol 1: first image enrolled.
    let mut enrolled: Vec<(&str, &[f32])> = Vec::new();
    let mut gallery_no_face = 0;
    let mut probes: Vec<(&str, Option<&[f32]>)> = Vec::new();
    let mut probes_no_face = 0;
    for (name, imgs) in &by {
        match &imgs[0].embedding {
            Some(v) => enrolled.push((name, v)),
            None => gallery_no_face += 1,
        }
        for p in &imgs[1..] {
            probes_no_face += usize::from(p.embedding.is_none());
            probes.push((name, p.embedding.as_deref()));
        }
    }
    std::fs::create_dir_all(work_dir).map_err(|source| super::GalleryError::Io { path: work_dir.to_path_buf(), source })?;
    progress(&format!("building the gallery: {} faces", enrolled.len()));
    let full = build(&work_dir.join("full"), model, dim, &enrolled)?;
    progress(&format!("mated searches: {} probes", probes.len()));
    let single = mated_rates(&full, model, &probes, &params)?;
    drop(full);

    // Non-mated: each half's identities removed in turn.
    let (mut non_mated, mut false_pos, mut amb_nm) = (0usize, 0usize, 0usize);
    for half in 0..2 {
        let removed: Vec<&str> = mated.iter().enumerate().filter(|(i, _)| i % 2 == half).map(|(_, n)| *n).collect();
        progress(&format!("non-mated searches, half {}: removing {} identities", half + 1, removed.len()));
        let g = build(&work_dir.join(format!("minus{half}")), model, dim, &enrolled)?;
        for name in &removed {
            match g.remove_identity(&IdentityRef::Name(name.to_string())) {
                Ok(_) | Err(super::GalleryError::UnknownIdentity { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let removed: std::collections::HashSet<&str> = removed.into_iter().collect();
        for (name, v) in probes.iter().filter(|(n, _)| removed.contains(n)) {
            non_mated += 1;
            let Some(v) = v else { continue };
            let id = g.identify(&Embedding { model: model.clone(), vector: v.to_vec() }, &params)?;
            if id.matches.iter().any(|m| m.name == *name) {
                return Err(crate::Error::InvalidParameter { name: "gallery", message: format!("removed identity {name} was returned by a search") });
            }
            false_pos += usize::from(id.decision != Decision::Unknown);
            amb_nm += usize::from(id.decision == Decision::Ambiguous);
        }
    }

    // Protocol 2: several faces per identity, max vs mean.
    let mut enrolled2: Vec<(&str, &[f32])> = Vec::new();
    let mut probes2: Vec<(&str, Option<&[f32]>)> = Vec::new();
    let mut multi_identities = 0;
    for (name, imgs) in &by {
        if imgs.len() >= 4 {
            multi_identities += 1;
            let k = imgs.len() / 2;
            enrolled2.extend(imgs[..k].iter().filter_map(|i| i.embedding.as_deref().map(|v| (*name, v))));
            probes2.extend(imgs[k..].iter().map(|i| (*name, i.embedding.as_deref())));
        } else if let Some(v) = &imgs[0].embedding {
            enrolled2.push((name, v));
        }
    }
    progress(&format!("several faces per identity: {} identities, {} faces, {} probes", multi_identities, enrolled2.len(), probes2.len()));
    let g2 = build(&work_dir.join("multi"), model, dim, &enrolled2)?;
    let multi_max = mated_rates(&g2, model, &probes2, &IdentifyParams { scoring: Scoring::Max, ..params.clone() })?;
    let multi_mean = mated_rates(&g2, model, &probes2, &IdentifyParams { scoring: Scoring::Mean, ..params.clone() })?;
    drop(g2);
    let _ = std::fs::remove_dir_all(work_dir);

    Ok(IdentificationReport {
        model: model.clone(),
        threshold: threshold.clone(),
        ambiguity_margin,
        mated_identities: mated.len(),
        distractors: by.values().filter(|v| v.len() == 1).count(),
        gallery_faces: enrolled.len(),
        gallery_no_face,
        probes_no_face,
        single,
        non_mated_probes: non_mated,
        fpir: false_pos as f64 / non_mated.max(1) as f64,
        ambiguous_non_mated: amb_nm,
        multi_identities,
        multi_gallery_faces: enrolled2.len(),
        multi_max,
        multi_mean,
        seconds: start.elapsed().as_secs_f64(),
    })
}
