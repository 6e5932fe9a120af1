//! Identification evaluation on a labelled photo set (LFW protocol), through the real
//! [`Gallery`] API: galleries are built on disk, identities removed with
//! [`Gallery::remove_identities`], probes searched with [`Gallery::identify`].
//!
//! Protocol 1 ([`evaluate`]), over identities with their images in file-name order:
//! - **gallery**: the first image of every identity with ≥ 2 images, plus the only image of every
//!   single-image identity (a distractor: enrolled, never searched for);
//! - **probes**: the remaining images of the identities with ≥ 2 images;
//! - **rank-1 / rank-5 accuracy** (closed set): the probe's identity is the best (among the best
//!   5) identity returned;
//! - **FNIR** at threshold `t` (mated searches): the share of probes *not* decided
//!   [`Decision::Match`] to their own identity (wrong identity, `unknown` or `ambiguous`);
//! - **FPIR** at `t` (non-mated searches): the mated identities are split in two halves
//!   (alternately, by name); for each half, the gallery with that half's identities removed is
//!   searched with that half's probes; a false positive is any decision other than
//!   [`Decision::Unknown`] (someone returned at or above threshold). Every probe is thus
//!   searched once mated and once non-mated.
//!
//! Both are reported at the model's calibrated 1:1 operating points (FAR 1e-2, 1e-3, 1e-4) and at
//! thresholds fitted on these non-mated searches to FPIR 1e-2 and 1e-3 (in-sample: indicative).
//!
//! Protocol 2, for the per-identity **scoring** (max over faces vs mean template, identical with
//! one face per identity): identities with ≥ 4 images enroll their first ⌊n/2⌋ images and are
//! searched with the rest; the first image of every other identity is a distractor; FNIR and FPIR
//! as above.
//!
//! An image without an embedding (no face found) stays in every denominator: an identity whose
//! enrollment images have no face is not enrolled, and its probes count as misses; a probe
//! without a face is a miss and cannot be a false positive.

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

/// Rates at one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    /// Threshold name (`FAR=1e-3` for a calibrated point, `FPIR=1e-2 (fitted here)` for one
    /// chosen on these non-mated searches).
    pub operating_point: String,
    /// The threshold.
    pub threshold: f32,
    /// FNIR in [0, 1]: mated searches not decided `match` to the right identity.
    pub fnir: f64,
    /// FPIR in [0, 1]: non-mated searches with anyone at or above threshold.
    pub fpir: f64,
    /// Mated searches decided `ambiguous`.
    pub ambiguous_mated: usize,
    /// Non-mated searches decided `ambiguous`.
    pub ambiguous_non_mated: usize,
}

/// Results of one scoring on one protocol.
#[derive(Debug, Clone, Serialize)]
pub struct ScoringResult {
    /// The scoring.
    pub scoring: Scoring,
    /// Mated searches.
    pub mated: usize,
    /// Non-mated searches.
    pub non_mated: usize,
    /// Rank-1 accuracy in [0, 1] (closed set).
    pub rank1: f64,
    /// Rank-5 accuracy in [0, 1].
    pub rank5: f64,
    /// FNIR and FPIR at the calibrated operating points and at thresholds fitted to FPIR targets.
    pub rates: Vec<Rates>,
}

/// One protocol's results.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolResult {
    /// Identities searched for (with probes).
    pub mated_identities: usize,
    /// Distractor identities (enrolled, never searched for).
    pub distractors: usize,
    /// Faces enrolled.
    pub gallery_faces: usize,
    /// Identities whose enrollment images had no face (not enrolled; their probes are misses).
    pub gallery_no_face: usize,
    /// Probes without a face (misses, never false positives).
    pub probes_no_face: usize,
    /// Per scoring.
    pub scorings: Vec<ScoringResult>,
}

/// The identification report.
#[derive(Debug, Clone, Serialize)]
pub struct IdentificationReport {
    /// Model of the embeddings.
    pub model: ModelId,
    /// The default operating point.
    pub threshold: Threshold,
    /// The ambiguity margin used.
    pub ambiguity_margin: f32,
    /// Protocol 1: first image of each identity enrolled (max and mean coincide).
    pub single: ProtocolResult,
    /// Protocol 2: several faces per identity, max vs mean.
    pub multi: ProtocolResult,
    /// Wall time of the searches (galleries built and searched), seconds.
    pub seconds: f64,
}

impl ProtocolResult {
    /// The result of `scoring`.
    pub fn get(&self, scoring: Scoring) -> Option<&ScoringResult> {
        self.scorings.iter().find(|s| s.scoring == scoring)
    }
}

impl ScoringResult {
    /// The rates at the operating point named `name`.
    pub fn at(&self, name: &str) -> Option<&Rates> {
        self.rates.iter().find(|r| r.operating_point == name)
    }
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
    let mut names: Vec<&str> = enrolled.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    let ids: BTreeMap<&str, i64> = names.iter().copied().zip(g.add_identities(names.iter().map(|n| (n.to_string(), serde_json::Value::Null)).collect())?).collect();
    let mut faces = Vec::with_capacity(enrolled.len());
    for (name, v) in enrolled {
        let id = ids[name];
        faces.push((id, NewFace { embedding: Embedding { model: model.clone(), vector: v.to_vec() }, image_sha256: String::new(), bbox: [0.0; 4], quality: None, crop: None }));
    }
    g.enroll_many(faces)?;
    Ok(g)
}

/// Outcome of one search: whether the best identity is the probe's, its rank if in the top 5,
/// and the best two scores (−∞ when absent, or when there is no face).
#[derive(Clone, Copy)]
struct Search {
    correct: bool,
    rank: Option<usize>,
    s1: f32,
    s2: f32,
}

const NONE: Search = Search { correct: false, rank: None, s1: f32::NEG_INFINITY, s2: f32::NEG_INFINITY };

fn search(g: &Gallery, model: &ModelId, name: &str, v: Option<&[f32]>, params: &IdentifyParams) -> crate::Result<Search> {
    let Some(v) = v else { return Ok(NONE) };
    let id = g.identify(&Embedding { model: model.clone(), vector: v.to_vec() }, params)?;
    let rank = id.matches.iter().position(|m| m.name == name);
    Ok(Search {
        correct: rank == Some(0),
        rank,
        s1: id.matches.first().map_or(f32::NEG_INFINITY, |m| m.similarity),
        s2: id.matches.get(1).map_or(f32::NEG_INFINITY, |m| m.similarity),
    })
}

fn rates(name: String, t: f32, margin: f32, mated: &[Search], non_mated: &[Search]) -> Rates {
    let decide = |s: &Search| {
        if s.s1 < t {
            Decision::Unknown
        } else if s.s2 >= t && s.s1 - s.s2 < margin {
            Decision::Ambiguous
        } else {
            Decision::Match
        }
    };
    let miss = mated.iter().filter(|s| !(s.correct && decide(s) == Decision::Match)).count();
    let fp = non_mated.iter().filter(|s| decide(s) != Decision::Unknown).count();
    Rates {
        operating_point: name,
        threshold: t,
        fnir: miss as f64 / mated.len().max(1) as f64,
        fpir: fp as f64 / non_mated.len().max(1) as f64,
        ambiguous_mated: mated.iter().filter(|s| decide(s) == Decision::Ambiguous).count(),
        ambiguous_non_mated: non_mated.iter().filter(|s| decide(s) == Decision::Ambiguous).count(),
    }
}

/// The lowest threshold whose FPIR on `non_mated` is ≤ `target`: just above the
/// ⌊target·n⌋+1-th highest best non-mated score.
fn threshold_for_fpir(non_mated: &[Search], target: f64) -> f32 {
    let mut s: Vec<f32> = non_mated.iter().map(|s| s.s1).filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    let allowed = (target * non_mated.len() as f64).floor() as usize;
    match s.get(allowed) {
        Some(x) => f32::from_bits(x.to_bits() + 1).max(*x + 1e-6),
        None => -1.0,
    }
}

/// Runs one protocol: mated searches in the full gallery; non-mated searches of each half of the
/// mated identities in the gallery with that half removed.
#[allow(clippy::too_many_arguments)]
fn protocol(
    work: &Path,
    model: &ModelId,
    dim: usize,
    enrolled: &[(&str, &[f32])],
    probes: &[(&str, Option<&[f32]>)],
    mated: &[&str],
    points: &[(String, f32)],
    params: &IdentifyParams,
    scorings: &[Scoring],
    progress: &mut impl FnMut(&str),
) -> crate::Result<Vec<ScoringResult>> {
    let full = build(&work.join("full"), model, dim, enrolled)?;
    let mut m: Vec<Vec<Search>> = vec![Vec::new(); scorings.len()];
    let mut nm: Vec<Vec<Search>> = vec![Vec::new(); scorings.len()];
    progress(&format!("  mated searches: {} probes in {} faces", probes.len(), enrolled.len()));
    for (k, sc) in scorings.iter().enumerate() {
        let p = IdentifyParams { scoring: *sc, ..params.clone() };
        for (name, v) in probes {
            m[k].push(search(&full, model, name, *v, &p)?);
        }
    }
    drop(full);
    for half in 0..2 {
        let removed: Vec<&str> = mated.iter().enumerate().filter(|(i, _)| i % 2 == half).map(|(_, n)| *n).collect();
        progress(&format!("  non-mated searches, half {}: {} identities removed", half + 1, removed.len()));
        let g = build(&work.join(format!("minus{half}")), model, dim, enrolled)?;
        // Identities whose enrollment images had no face were never enrolled.
        let present: Vec<IdentityRef> =
            removed.iter().map(|n| IdentityRef::Name(n.to_string())).filter(|r| matches!(g.find_identity(r), Ok(Some(_)))).collect();
        g.remove_identities(&present)?;
        let removed: std::collections::HashSet<&str> = removed.into_iter().collect();
        for (k, sc) in scorings.iter().enumerate() {
            let p = IdentifyParams { scoring: *sc, ..params.clone() };
            for (name, v) in probes.iter().filter(|(n, _)| removed.contains(n)) {
                let s = search(&g, model, name, *v, &p)?;
                if s.rank.is_some() {
                    return Err(crate::Error::InvalidParameter { name: "gallery", message: format!("removed identity {name} was returned by a search") });
                }
                nm[k].push(s);
            }
        }
    }
    let mut out = Vec::new();
    for (k, sc) in scorings.iter().enumerate() {
        let (ms, ns) = (&m[k], &nm[k]);
        let n = ms.len().max(1) as f64;
        let mut r: Vec<Rates> = points.iter().map(|(name, t)| rates(name.clone(), *t, params.ambiguity_margin, ms, ns)).collect();
        for target in [1e-2, 1e-3] {
            let t = threshold_for_fpir(ns, target);
            r.push(rates(format!("FPIR={target:e} (fitted here)"), t, params.ambiguity_margin, ms, ns));
        }
        out.push(ScoringResult {
            scoring: *sc,
            mated: ms.len(),
            non_mated: ns.len(),
            rank1: ms.iter().filter(|s| s.correct).count() as f64 / n,
            rank5: ms.iter().filter(|s| s.rank.is_some()).count() as f64 / n,
            rates: r,
        });
    }
    Ok(out)
}

/// Runs the protocols (module docs) with galleries in `work_dir` (created, and removed at the
/// end). `points` are the calibrated operating points to report (name, threshold); `threshold`
/// is the default one. `progress(message)` reports each stage.
///
/// # Errors
/// [`crate::Error::Gallery`] when a gallery cannot be built or searched;
/// [`crate::Error::InvalidParameter`] when there is no identity with two images or the
/// embeddings have different lengths.
pub fn evaluate(
    items: &[LabelledEmbedding],
    model: &ModelId,
    threshold: &Threshold,
    points: &[(String, f32)],
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
    std::fs::create_dir_all(work_dir).map_err(|source| super::GalleryError::Io { path: work_dir.to_path_buf(), source })?;

    // Protocol 1: first image enrolled.
    let (mut enrolled, mut probes) = (Vec::new(), Vec::new());
    let (mut gallery_no_face, mut probes_no_face) = (0, 0);
    for (name, imgs) in &by {
        match &imgs[0].embedding {
            Some(v) => enrolled.push((*name, v.as_slice())),
            None => gallery_no_face += 1,
        }
        for p in &imgs[1..] {
            probes_no_face += usize::from(p.embedding.is_none());
            probes.push((*name, p.embedding.as_deref()));
        }
    }
    progress("one face per identity");
    let scorings = protocol(&work_dir.join("single"), model, dim, &enrolled, &probes, &mated, points, &params, &[Scoring::Max, Scoring::Mean], &mut progress)?;
    let single = ProtocolResult {
        mated_identities: mated.len(),
        distractors: by.values().filter(|v| v.len() == 1).count(),
        gallery_faces: enrolled.len(),
        gallery_no_face,
        probes_no_face,
        scorings,
    };

    // Protocol 2: several faces per identity.
    let (mut enrolled2, mut probes2, mut mated2) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gallery_no_face2, mut probes_no_face2) = (0, 0);
    for (name, imgs) in &by {
        if imgs.len() >= 4 {
            mated2.push(*name);
            let k = imgs.len() / 2;
            let before = enrolled2.len();
            enrolled2.extend(imgs[..k].iter().filter_map(|i| i.embedding.as_deref().map(|v| (*name, v))));
            gallery_no_face2 += usize::from(enrolled2.len() == before);
            for i in &imgs[k..] {
                probes_no_face2 += usize::from(i.embedding.is_none());
                probes2.push((*name, i.embedding.as_deref()));
            }
        } else if let Some(v) = &imgs[0].embedding {
            enrolled2.push((*name, v.as_slice()));
        }
    }
    progress("several faces per identity");
    let scorings = protocol(&work_dir.join("multi"), model, dim, &enrolled2, &probes2, &mated2, points, &params, &[Scoring::Max, Scoring::Mean], &mut progress)?;
    let multi = ProtocolResult {
        mated_identities: mated2.len(),
        distractors: by.len() - mated2.len(),
        gallery_faces: enrolled2.len(),
        gallery_no_face: gallery_no_face2,
        probes_no_face: probes_no_face2,
        scorings,
    };
    let _ = std::fs::remove_dir_all(work_dir);
    Ok(IdentificationReport { model: model.clone(), threshold: threshold.clone(), ambiguity_margin, single, multi, seconds: start.elapsed().as_secs_f64() })
}
