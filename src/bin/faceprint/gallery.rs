//! Gallery commands: `gallery init|list|show|rename|merge|remove|check|reembed`, `enroll`,
//! `identify`, `index` (bulk enrollment) and `eval identification`.
//!
//! The gallery is the directory given by `--gallery PATH` or `FACEPRINT_GALLERY`, default
//! `<data dir>/gallery`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sha2::{Digest, Sha256};

use faceprint::embed::{Embedding, ModelId};
use faceprint::gallery::{
    self, EnrollImageOptions, EnrollTarget, FaceOutcome, FacePolicy, Gallery, GalleryError, GalleryOptions, IdentifyParams, IdentityRef, NewFace,
    Scoring,
};
use faceprint::index::SearchMode;
use faceprint::pipeline::FaceAnalyzer;
use faceprint::Error;

use super::{config, decision_threshold, error_text, expand_images, is_image_name, load_analyzer, progress_bar, round, trunc, Global, ModelArgs};

const EXIT_USAGE: u8 = 2;
const EXIT_BAD_INPUT: u8 = 3;

#[derive(Args, Debug, Clone)]
pub(crate) struct GalleryArgs {
    /// Gallery directory [default: <data dir>/gallery]
    #[arg(long, env = "FACEPRINT_GALLERY")]
    gallery: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GalleryCmd {
    /// Create an empty gallery for the recogniser's model
    Init {
        /// Store each enrolled face's aligned 112×112 crop (PNG), which `gallery reembed` needs
        #[arg(long)]
        store_crops: bool,
        /// How the search index holds the vectors in memory: f32 (4 bytes per component), f16
        /// (2) or i8 (1; candidates are rescored from the store, so similarities stay exact).
        /// Recorded in the gallery; `gallery set-index-storage` changes it later. README,
        /// "Index memory", gives the measured memory and speed of each
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "i8"])]
        index_storage: String,
        #[command(flatten)]
        gallery: GalleryArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// List identities with their number of faces
    List {
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Show one identity (name, or id:N) and its faces
    Show {
        /// Identity name, or id:N
        identity: String,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Rename an identity
    Rename {
        /// Identity name, or id:N
        identity: String,
        /// New name
        new_name: String,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Move every face of FROM into INTO and remove FROM
    Merge {
        /// Identity merged away (name or id:N)
        from: String,
        /// Identity that receives the faces (name or id:N)
        into: String,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Remove an identity with all its faces, or one face with --face
    Remove {
        /// Identity name, or id:N (omit with --face)
        #[arg(required_unless_present = "face")]
        identity: Option<String>,
        /// Remove only this face id
        #[arg(long, allow_negative_numbers = true, conflicts_with = "identity")]
        face: Option<i64>,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Change how the search index holds the vectors (f32, f16 or i8; see `gallery init
    /// --index-storage`): recorded in the gallery, and the index rebuilt from the stored
    /// embeddings (nothing is re-embedded; about as long as indexing every face again). Stop a
    /// service using the gallery first: it keeps its storage until restarted
    SetIndexStorage {
        #[arg(value_parser = ["f32", "f16", "i8"])]
        storage: String,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Check the store (SQLite integrity check) and that the search index matches it
    Check {
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Re-embed the stored crops with another recogniser (--recognizer) into a new gallery (--out)
    Reembed {
        /// Directory of the new gallery
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        gallery: GalleryArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// (testing) Enroll synthetic embeddings in a loop, printing each acknowledged face id
    #[command(hide = true)]
    StressEnroll {
        /// Number of enrollments (0 = until killed)
        #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
        count: u64,
        /// Embedding dimension
        #[arg(long, allow_negative_numbers = true, default_value_t = 64)]
        dim: usize,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
}

/// Face choice for photos with several faces.
#[derive(Args, Debug, Clone)]
pub(crate) struct FaceChoice {
    /// Take the face with this index (0-based, largest first) from every photo
    #[arg(long, allow_negative_numbers = true, conflicts_with = "largest")]
    face: Option<usize>,
    /// Take the largest face of photos with several faces (default: such photos are refused)
    #[arg(long)]
    largest: bool,
    /// Store the aligned crop of each enrolled face [default: the gallery's setting]
    #[arg(long)]
    store_crop: bool,
    /// Enrollment gate: minimum detection score of an enrolled face, in [0, 1] (probes keep
    /// --det-thresh). The default refuses a dog's face (0.643) and 0.19 % of LFW's photos
    /// (README "Gallery and identification"); --no-quality-gate turns it off too
    #[arg(long, allow_hyphen_values = true, default_value_t = gallery::ENROLLMENT_MIN_DET_SCORE)]
    min_enroll_score: f32,
}

impl FaceChoice {
    fn options(&self) -> EnrollImageOptions {
        EnrollImageOptions { faces: self.policy(), store_crop: self.store_crop.then_some(true), min_det_score: self.min_enroll_score }
    }

    fn policy(&self) -> FacePolicy {
        match (self.face, self.largest) {
            (Some(i), _) => FacePolicy::Index(i),
            (None, true) => FacePolicy::Largest,
            _ => FacePolicy::Only,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct EnrollArgs {
    /// Identity name (created when new), or id:N
    name: String,
    /// Photos of that person, one face each
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Metadata for a new identity, a JSON object
    #[arg(long)]
    metadata: Option<String>,
    #[command(flatten)]
    choice: FaceChoice,
    #[command(flatten)]
    gallery: GalleryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScoringArg {
    Max,
    Mean,
}

#[derive(Args, Debug)]
pub(crate) struct IdentifyArgs {
    /// Probe photos (files or folders); every face is identified
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Identities listed per face
    #[arg(long = "top", allow_negative_numbers = true, default_value_t = gallery::DEFAULT_TOP_K)]
    top: usize,
    /// Open-set operating point: the threshold at which about this share of strangers (probes of people not enrolled) is matched to someone, from the calibration and the gallery's size
    #[arg(long, allow_hyphen_values = true, default_value_t = gallery::DEFAULT_FPIR, conflicts_with_all = ["far", "threshold"])]
    fpir: f64,
    /// 1:1 operating point instead: the calibrated threshold at this false-accept rate per comparison (FPIR grows with the gallery: ≈ 1 − (1 − FAR)^N)
    #[arg(long, allow_hyphen_values = true, conflicts_with = "threshold")]
    far: Option<f64>,
    /// Decision threshold on cosine similarity in [-1, 1], instead of an operating point
    #[arg(long, allow_hyphen_values = true)]
    threshold: Option<f32>,
    /// Ambiguity margin: two identities above threshold closer than this are `ambiguous`
    #[arg(long, allow_hyphen_values = true, default_value_t = gallery::DEFAULT_AMBIGUITY_MARGIN)]
    margin: f32,
    /// Per-identity score: its mean template (measured better on LFW), or the max over its faces
    #[arg(long, value_enum, default_value = "mean")]
    scoring: ScoringArg,
    /// Search exhaustively even in a large gallery
    #[arg(long)]
    exact: bool,
    #[command(flatten)]
    gallery: GalleryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
pub(crate) struct IndexArgs {
    /// Folder of photos: one sub-folder per person (its name is the label), unless --labels
    dir: PathBuf,
    /// CSV of `file,label`, one photo per row: `file` relative to DIR (rows whose path leaves
    /// DIR are refused), `label` the identity name (not empty); a first row `file,label` is a
    /// header; quote a field with a comma ("Smith, Ann"); empty lines and lines starting with #
    /// are skipped. Bad rows are reported with their line number and the rest is enrolled (exit 3)
    #[arg(long)]
    labels: Option<PathBuf>,
    #[command(flatten)]
    choice: FaceChoice,
    #[command(flatten)]
    gallery: GalleryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
pub(crate) struct EvalIdentificationArgs {
    /// Folder of labelled photos, one sub-folder per identity (LFW: lfw_funneled)
    #[arg(long)]
    root: PathBuf,
    /// Open-set operating point of the main decision: FPIR target, with N = the number of enrolled identities (as `identify` does)
    #[arg(long, allow_hyphen_values = true, default_value_t = gallery::DEFAULT_FPIR, conflicts_with = "far")]
    fpir: f64,
    /// 1:1 operating point (FAR) of the main decision instead
    #[arg(long, allow_hyphen_values = true)]
    far: Option<f64>,
    /// Ambiguity margin
    #[arg(long, allow_hyphen_values = true, default_value_t = gallery::DEFAULT_AMBIGUITY_MARGIN)]
    margin: f32,
    /// Write the report (JSON) here as well
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

/// Exit code of a gallery error, or `None` for errors main's mapping handles.
fn gallery_exit_code(e: &anyhow::Error) -> Option<u8> {
    let ge = e.downcast_ref::<GalleryError>().or_else(|| match e.downcast_ref::<Error>() {
        Some(Error::Gallery(g)) => Some(g),
        _ => None,
    })?;
    Some(if ge.is_bad_input() {
        EXIT_BAD_INPUT
    } else if ge.is_usage() {
        EXIT_USAGE
    } else {
        1
    })
}

/// Runs a gallery command; gallery errors get their exit code here, others go to main.
pub(crate) fn run(g: &Global, f: impl FnOnce() -> anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match f() {
        Err(e) => match gallery_exit_code(&e) {
            Some(code) => {
                let msg = error_text(&e);
                eprintln!("error: {msg}");
                if g.json {
                    println!("{}", json!({"error": msg, "exit_code": code}));
                }
                Ok(ExitCode::from(code))
            }
            None => Err(e),
        },
        ok => ok,
    }
}

fn gallery_dir(g: &Global, a: &GalleryArgs) -> PathBuf {
    a.gallery.clone().unwrap_or_else(|| Gallery::default_dir(&faceprint::models::data_dir(g.data_dir.as_deref())))
}

fn open(g: &Global, a: &GalleryArgs) -> anyhow::Result<Opened> {
    Ok(Opened(Gallery::open(&gallery_dir(g, a), GalleryOptions::default())?))
}

/// A gallery opened by a command. When the command ends its search index is saved (as the
/// library's drop does), and a failure to save is reported: otherwise every later command would
/// rebuild the index from the store in silence, which takes long for a large gallery.
pub(crate) struct Opened(Gallery);

impl std::ops::Deref for Opened {
    type Target = Gallery;
    fn deref(&self) -> &Gallery {
        &self.0
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Err(e) = self.0.save_index() {
            eprintln!("warning: the search index could not be saved ({e}); the next command will rebuild it from the store");
        }
    }
}

fn out_line(v: serde_json::Value) {
    println!("{v}");
}

pub(crate) fn gallery_cmd(g: &Global, cmd: GalleryCmd) -> anyhow::Result<ExitCode> {
    run(g, || match cmd {
        GalleryCmd::Init { store_crops, index_storage, gallery, model } => {
            let storage: faceprint::index::VectorStorage = index_storage.parse().map_err(anyhow::Error::msg)?;
            let dir = gallery_dir(g, &gallery);
            let mut cfg = config(g, &model, true);
            cfg.cache = None;
            let analyzer = load_analyzer(cfg)?;
            let rec = analyzer.recognizer().context("no recogniser loaded")?;
            let gal = Gallery::create(&dir, rec.model_id(), rec.dim(), GalleryOptions {
                store_crops,
                index: faceprint::index::IndexParams { storage, ..Default::default() },
            })?;
            if g.json {
                out_line(json!({"gallery": dir, "model": gal.model_id(), "dim": gal.dim(), "store_crops": store_crops, "index_storage": storage.to_string()}));
            } else {
                println!(
                    "created gallery {} for model {} ({}-d embeddings, {storage} index){}",
                    dir.display(),
                    gal.model_id(),
                    gal.dim(),
                    if store_crops { ", storing face crops" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::List { gallery } => {
            let gal = open(g, &gallery)?;
            let ids = gal.identities()?;
            if g.json {
                for i in &ids {
                    out_line(json!(i));
                }
            } else {
                println!("gallery {} — model {}, {} identities, {} faces", gal.dir().display(), gal.model_id(), ids.len(), gal.len());
                println!("{:>6}  {:<40} {:>5}  created", "id", "name", "faces");
                for i in &ids {
                    println!("{:>6}  {:<40} {:>5}  {}", i.id, trunc(&i.name, 40), i.faces, i.created);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::Show { identity, gallery } => {
            let gal = open(g, &gallery)?;
            let d = gal.identity(&IdentityRef::parse(&identity))?;
            if g.json {
                out_line(json!(d));
            } else {
                let i = &d.identity;
                println!("identity {} (id {}), {} face(s), created {}, metadata {}", i.name, i.id, i.faces, i.created, i.metadata);
                println!("{:>8}  {:<28} {:<16} {:<5} added", "face", "bbox", "image sha256", "crop");
                for f in &d.faces {
                    let b = f.bbox;
                    println!(
                        "{:>8}  {:<28} {:<16} {:<5} {}",
                        f.id,
                        format!("[{:.0},{:.0},{:.0},{:.0}]", b[0], b[1], b[2], b[3]),
                        f.image_sha256.chars().take(16).collect::<String>(),
                        if f.has_crop { "yes" } else { "no" },
                        f.added
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::Rename { identity, new_name, gallery } => {
            let gal = open(g, &gallery)?;
            let r = gal.rename(&IdentityRef::parse(&identity), &new_name)?;
            if g.json {
                out_line(json!(r));
            } else {
                println!("renamed {identity} to {} (id {})", r.name, r.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::Merge { from, into, gallery } => {
            let gal = open(g, &gallery)?;
            let r = gal.merge(&IdentityRef::parse(&from), &IdentityRef::parse(&into))?;
            if g.json {
                out_line(json!(r));
            } else {
                println!("merged {from} into {} (id {}): {} face(s)", r.name, r.id, r.faces);
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::Remove { identity, face, gallery } => {
            let gal = open(g, &gallery)?;
            match (identity, face) {
                (_, Some(f)) => {
                    gal.remove_face(f)?;
                    if g.json {
                        out_line(json!({"removed_face": f}));
                    } else {
                        println!("removed face {f}");
                    }
                }
                (Some(i), None) => {
                    let faces = gal.remove_identity(&IdentityRef::parse(&i))?;
                    if g.json {
                        out_line(json!({"removed_identity": i, "removed_faces": faces}));
                    } else {
                        println!("removed {i} and its {} face(s)", faces.len());
                    }
                }
                (None, None) => anyhow::bail!(Error::InvalidParameter { name: "identity", message: "give an identity or --face".into() }),
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::SetIndexStorage { storage, gallery } => {
            let storage: faceprint::index::VectorStorage = storage.parse().map_err(anyhow::Error::msg)?;
            let mut gal = Gallery::open(&gallery_dir(g, &gallery), GalleryOptions::default())?;
            let before = gal.meta()?.index_storage;
            if before == storage {
                if g.json {
                    out_line(json!({"gallery": gal.dir(), "index_storage": storage.to_string(), "before": before.to_string(), "faces": gal.len(), "changed": false}));
                } else {
                    println!("gallery {}: the index storage is already {storage}; nothing to do", gal.dir().display());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let t = std::time::Instant::now();
            let saved = gal.set_index_storage(storage);
            if g.json {
                out_line(json!({"gallery": gal.dir(), "index_storage": storage.to_string(), "before": before.to_string(), "faces": gal.len(), "changed": true, "seconds": t.elapsed().as_secs_f64()}));
            } else {
                println!("gallery {}: index storage {before} → {storage}, {} faces re-indexed in {:.1} s", gal.dir().display(), gal.len(), t.elapsed().as_secs_f64());
            }
            if let Err(e) = saved {
                eprintln!("warning: the search index could not be saved ({e}); the next command will rebuild it from the store");
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::Check { gallery } => {
            let gal = open(g, &gallery)?;
            let r = gal.check()?;
            if g.json {
                out_line(json!({"ok": r.ok(), "index_storage": gal.meta()?.index_storage.to_string(), "report": r}));
            } else {
                println!(
                    "gallery {}: {} identities, {} faces, generation {}; {} index {}",
                    gal.dir().display(),
                    r.identities,
                    r.faces,
                    r.generation,
                    gal.meta()?.index_storage,
                    r.index_origin
                );
                for p in r.store_problems.iter().chain(&r.index_problems) {
                    println!("  problem: {p}");
                }
                println!("{}", if r.ok() { "ok" } else { "PROBLEMS FOUND" });
            }
            Ok(if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        GalleryCmd::Reembed { out, gallery, model } => {
            let gal = open(g, &gallery)?;
            let mut cfg = config(g, &model, true);
            cfg.cache = None;
            let analyzer = load_analyzer(cfg)?;
            let pb = progress_bar(gal.len(), "re-embedding");
            let r = gal.reembed_into(&analyzer, &out, |d, _| pb.set_position(d as u64))?;
            pb.finish_and_clear();
            if g.json {
                out_line(json!({"gallery": out, "report": r}));
            } else {
                println!(
                    "re-embedded {} face(s) of {} identities with {} into {}",
                    r.faces,
                    r.identities,
                    r.model,
                    out.display()
                );
            }
            if r.skipped_without_crop > 0 {
                eprintln!("warning: {} face(s) had no stored crop and were not carried over; re-enroll them from their photos", r.skipped_without_crop);
            }
            Ok(ExitCode::SUCCESS)
        }
        GalleryCmd::StressEnroll { count, dim, gallery } => stress_enroll(g, &gallery, count, dim),
    })
}

/// Model id of the synthetic embeddings of `gallery stress-enroll`.
const STRESS_MODEL: &str = "synthetic-stress-0000000000000000";

fn stress_enroll(g: &Global, a: &GalleryArgs, count: u64, dim: usize) -> anyhow::Result<ExitCode> {
    let dir = gallery_dir(g, a);
    let model = ModelId(STRESS_MODEL.into());
    let gal = match Gallery::open(&dir, GalleryOptions::default()) {
        Ok(gal) => gal,
        Err(GalleryError::NotAGallery { .. }) => Gallery::create(&dir, &model, dim, GalleryOptions::default())?,
        Err(e) => return Err(e.into()),
    };
    // xorshift64*, seeded from the clock and pid: different vectors in every run.
    let mut s: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) ^ ((std::process::id() as u64) << 32) | 1;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let stdout = std::io::stdout();
    let mut i = 0u64;
    while count == 0 || i < count {
        let name = format!("p{}-{i}", std::process::id());
        let ident = gal.add_identity(&name, json!({"n": i}))?;
        let v: Vec<f32> = (0..gal.dim()).map(|_| next() as f32).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let face = NewFace {
            embedding: Embedding { model: gal.model_id().clone(), vector: v.iter().map(|x| x / n).collect() },
            image_sha256: String::new(),
            bbox: [0.0; 4],
            quality: None,
            crop: None,
        };
        let id = gal.enroll(&IdentityRef::Id(ident.id), face)?;
        // Printed only after the commit returned: an acknowledged enrollment.
        let mut out = stdout.lock();
        writeln!(out, "{id} {name}")?;
        out.flush()?;
        i += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Threshold for identification commands.
fn threshold_of(analyzer: &FaceAnalyzer, far: f64, threshold: Option<f32>) -> anyhow::Result<faceprint::compare::Threshold> {
    decision_threshold(analyzer, Some(far), threshold)
}

fn check_model(gal: &Gallery, analyzer: &FaceAnalyzer) -> anyhow::Result<()> {
    let m = analyzer.model_id()?;
    if m != gal.model_id() {
        return Err(GalleryError::ModelMismatch { gallery: gal.model_id().clone(), given: m.clone() }.into());
    }
    Ok(())
}

pub(crate) fn enroll_cmd(g: &Global, a: EnrollArgs) -> anyhow::Result<ExitCode> {
    run(g, || {
        let gal = open(g, &a.gallery)?;
        let mut cfg = config(g, &a.model, true);
        cfg.cache = None;
        let analyzer = load_analyzer(cfg)?;
        check_model(&gal, &analyzer)?;
        let target = match IdentityRef::parse(&a.name) {
            r @ IdentityRef::Id(_) => EnrollTarget::Existing(r),
            IdentityRef::Name(name) => {
                let metadata = match &a.metadata {
                    Some(m) => serde_json::from_str(m).map_err(|e| Error::InvalidParameter { name: "metadata", message: format!("not JSON: {e}") })?,
                    None => serde_json::Value::Null,
                };
                EnrollTarget::GetOrCreate { name, metadata }
            }
        };
        // Every photo is analysed first; the faces are then committed in one transaction, and a
        // new identity is created only with at least one face.
        let rep = gal.enroll_images(&analyzer, &target, &a.images, &a.choice.options())?;
        let name = rep.identity.as_ref().map_or(a.name.clone(), |i| i.name.clone());
        if let Some(i) = rep.identity.as_ref().filter(|_| rep.created) {
            eprintln!("created identity {} (id {})", i.name, i.id);
        }
        let mut failures = Vec::new();
        for (p, r) in &rep.results {
            match r {
                Ok(e) => {
                    for w in &e.warnings {
                        eprintln!("warning: {}: {w}", p.display());
                    }
                    if g.json {
                        let mut v = json!({"image": e.path, "identity": name, "identity_id": e.identity_id, "face_id": e.face_id, "face": e.face, "faces_in_image": e.faces_in_image, "bbox": e.bbox.iter().map(|x| round(*x, 2)).collect::<Vec<_>>(), "already_enrolled": e.already_enrolled});
                        if !e.warnings.is_empty() {
                            v["warnings"] = json!(e.warnings);
                        }
                        out_line(v);
                    } else if e.already_enrolled {
                        println!("{}: face {} is already enrolled as face {} of {}: nothing to do", p.display(), e.face, e.face_id, name);
                    } else {
                        println!("enrolled {} face {} of {} as face {} of {}", p.display(), e.face, e.faces_in_image, e.face_id, name);
                    }
                }
                Err(e) => {
                    if g.json {
                        out_line(json!({"image": p, "error": e.to_string()}));
                    }
                    failures.push(e.to_string());
                }
            }
        }
        if rep.identity.is_none() {
            eprintln!("identity {:?} was not created: none of its photos could be enrolled", a.name);
        }
        gal.save_index().ok();
        report_failures(&failures, a.images.len())
    })
}

fn report_failures(failures: &[String], total: usize) -> anyhow::Result<ExitCode> {
    Ok(super::report_failures(failures.iter().map(String::as_str), total))
}

pub(crate) fn identify_cmd(g: &Global, a: IdentifyArgs) -> anyhow::Result<ExitCode> {
    run(g, || {
        let gal = open(g, &a.gallery)?;
        let analyzer = load_analyzer(config(g, &a.model, true))?;
        check_model(&gal, &analyzer)?;
        let scoring = match a.scoring {
            ScoringArg::Max => Scoring::Max,
            ScoringArg::Mean => Scoring::Mean,
        };
        let threshold = match (a.threshold, a.far) {
            (None, None) => gal.threshold_for_fpir(&analyzer.calibration()?, a.fpir, scoring)?,
            (t, far) => threshold_of(&analyzer, far.unwrap_or(1e-3), t)?,
        };
        let params = IdentifyParams {
            top_k: a.top,
            threshold,
            ambiguity_margin: a.margin,
            scoring,
            search: if a.exact { SearchMode::Exact } else { SearchMode::Auto },
        };
        // A 1:1 operating point does not hold for 1:N: a stranger is compared with everyone.
        let n = gal.identities()?.len();
        if let (Some(far), None, Some(_)) = (params.threshold.far, a.threshold, a.far) {
            let fpir = 1.0 - (1.0 - far).powf(n as f64);
            if fpir > 0.05 {
                eprintln!(
                    "warning: the threshold is the 1:1 operating point {} ({:.4}); with {n} identities enrolled, a stranger is matched to someone \
                     about {:.0} % of the time (FPIR ≈ 1 − (1 − FAR)^N); use --fpir (the default) or a stricter --far (README: Gallery and identification)",
                    params.threshold.name,
                    params.threshold.similarity,
                    100.0 * fpir
                );
            }
        }
        let (paths, mut failures) = expand_images(&a.images);
        let mut failures: Vec<String> = failures.drain(..).map(|(_, m)| m).collect();
        let mut fatal: Option<anyhow::Error> = None;
        let pb = if paths.len() > 20 { progress_bar(paths.len(), "images") } else { indicatif::ProgressBar::hidden() };
        if !g.json {
            println!(
                "gallery {} ({} faces); threshold {:.4} ({}), margin {}",
                gal.dir().display(),
                gal.len(),
                params.threshold.similarity,
                params.threshold.name,
                params.ambiguity_margin
            );
        }
        let cache = analyzer.analyze_files(&paths, true, |path, res| {
            pb.inc(1);
            if fatal.is_some() {
                return;
            }
            let res = res.map_err(anyhow::Error::from).and_then(|img| Ok(gal.identify_analysed(&analyzer, &img, &params)?));
            pb.suspend(|| match res {
                Ok(r) => print_identification(g.json, &r),
                Err(e) => {
                    if gallery_exit_code(&e).is_some() {
                        fatal = Some(e);
                        return;
                    }
                    if g.json {
                        out_line(json!({"image": path, "error": error_text(&e)}));
                    }
                    failures.push(error_text(&e));
                }
            });
        });
        pb.finish_and_clear();
        if let Some(e) = fatal {
            return Err(e);
        }
        if let Err(e) = cache {
            eprintln!("warning: {e}; results were not cached");
        }
        report_failures(&failures, paths.len())
    })
}

fn print_identification(json_out: bool, r: &gallery::ImageIdentification) {
    for w in &r.warnings {
        eprintln!("warning: {}: {w}", r.path.display());
    }
    if json_out {
        if r.faces.is_empty() {
            let mut v = json!({"image": r.path, "faces": 0});
            if !r.warnings.is_empty() {
                v["warnings"] = json!(r.warnings);
            }
            out_line(v);
        }
        for f in &r.faces {
            let mut v = json!({
                "image": r.path,
                "face": f.face,
                "bbox": f.bbox.iter().map(|x| round(*x, 2)).collect::<Vec<_>>(),
                "score": round(f.score, 4),
                "weak_detection": f.weak_detection,
            });
            if !r.warnings.is_empty() {
                v["warnings"] = json!(r.warnings);
            }
            match (&f.refused, &f.identification) {
                (Some(why), _) => v["refused"] = json!(why),
                (None, Some(id)) => {
                    v["decision"] = json!(id.decision);
                    v["matches"] = json!(id
                        .matches
                        .iter()
                        .map(|m| json!({"identity": m.name, "identity_id": m.identity_id, "similarity": round(m.similarity, 6), "face_id": m.face}))
                        .collect::<Vec<_>>());
                    v["threshold"] = json!(round(id.threshold.similarity, 6));
                    v["operating_point"] = json!(id.threshold.name);
                }
                _ => {}
            }
            out_line(v);
        }
        return;
    }
    if r.faces.is_empty() {
        println!("{}: no face", r.path.display());
    }
    for f in &r.faces {
        let b = f.bbox;
        let bbox = format!("[{:.0},{:.0},{:.0},{:.0}]", b[0], b[1], b[2], b[3]);
        let weak = if f.weak_detection { format!(" (weak detection {:.3}: maybe not a face)", f.score) } else { String::new() };
        let head = format!("{} face {} {bbox}{weak}", trunc(&r.path.display().to_string(), 40), f.face);
        match (&f.refused, &f.identification) {
            (Some(why), _) => println!("{head}: refused: {why}"),
            (None, Some(id)) => {
                let best = id.matches.first().map_or("-".to_string(), |m| format!("{} ({:.4})", m.name, m.similarity));
                println!("{head}: {} — best {best}", id.decision);
                for m in id.matches.iter().skip(1) {
                    println!("{:>48} {} ({:.4})", "", m.name, m.similarity);
                }
            }
            _ => println!("{head}: no embedding"),
        }
    }
}

/// Files to enroll with their labels (sub-folder names of `dir`, or the CSV), the problems
/// found (bad rows of the CSV with their line numbers, files without a label), and the bad rows
/// as JSON.
#[allow(clippy::type_complexity)]
fn labelled_files(dir: &Path, labels: Option<&Path>) -> anyhow::Result<(Vec<(PathBuf, String)>, Vec<String>, Vec<serde_json::Value>)> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut bad_rows = Vec::new();
    match labels {
        Some(csv_path) => {
            let l = gallery::labels::read_labels_csv(dir, csv_path)?;
            for b in &l.bad_rows {
                problems.push(format!("{}:{}: bad row: {}", csv_path.display(), b.line, b.message));
                bad_rows.push(json!({"line": b.line, "error": b.message}));
            }
            out.extend(l.files.into_iter().map(|f| (f.path, f.label)));
        }
        None => {
            let (files, walk) = expand_images(&[dir.to_path_buf()]);
            problems.extend(walk.into_iter().map(|(_, m)| m));
            let mut unlabelled = Vec::new();
            for f in files {
                let label = f.parent().filter(|p| *p != dir).and_then(|p| p.file_name()).and_then(|n| n.to_str()).map(str::to_string);
                match label {
                    Some(l) => out.push((f, l)),
                    None => unlabelled.push(f),
                }
            }
            // One line for all of them (a flat folder of photos would otherwise give one each).
            match unlabelled.len() {
                0 => {}
                1 => problems.push(format!("{}: not in a sub-folder, so it has no label (one sub-folder per person, or --labels)", unlabelled[0].display())),
                n => {
                    let names: Vec<String> = unlabelled.iter().take(3).map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
                    problems.push(format!(
                        "{}: {n} photos are not in a sub-folder, so they have no label ({}{}): put each person's photos in a sub-folder named after them, or give --labels",
                        dir.display(),
                        names.join(", "),
                        if n > 3 { ", …" } else { "" }
                    ));
                }
            }
        }
    }
    Ok((out, problems, bad_rows))
}

/// Ends a command with a bad-input error (exit 3) printed as `run` prints errors.
fn bad_input(g: &Global, msg: String) -> anyhow::Result<ExitCode> {
    eprintln!("error: {msg}");
    if g.json {
        println!("{}", json!({"error": msg, "exit_code": EXIT_BAD_INPUT}));
    }
    Ok(ExitCode::from(EXIT_BAD_INPUT))
}

pub(crate) fn index_cmd(g: &Global, a: IndexArgs) -> anyhow::Result<ExitCode> {
    run(g, || {
        if !(0.0..=1.0).contains(&a.choice.min_enroll_score) {
            anyhow::bail!(Error::InvalidParameter { name: "min-enroll-score", message: format!("{} is outside [0, 1]", a.choice.min_enroll_score) });
        }
        if !a.dir.is_dir() {
            let what = if a.dir.exists() { "is not a folder (index takes a folder of photos; use enroll for single photos)" } else { "does not exist" };
            return bad_input(g, format!("{} {what}", a.dir.display()));
        }
        let gal = open(g, &a.gallery)?;
        let analyzer = load_analyzer(config(g, &a.model, true))?;
        check_model(&gal, &analyzer)?;
        let (files, mut failures, bad_rows) = labelled_files(&a.dir, a.labels.as_deref())?;
        if files.is_empty() && bad_rows.is_empty() {
            // Nothing to enroll (an empty folder, photos without a sub-folder): say why, without
            // a summary of zero files.
            let why = match (&a.labels, failures.is_empty()) {
                (Some(csv), true) => format!("labels file {}: lists no photos", csv.display()),
                (None, true) => format!("{}: no labelled photos found", a.dir.display()),
                (_, false) => failures.join("\n  "),
            };
            return bad_input(g, why);
        }
        let mut warnings: Vec<String> = Vec::new();
        let store_crop = a.choice.store_crop || gal.stores_crops();
        let policy = a.choice.policy();
        // Skip files already enrolled under their label (same content hash): the command can be
        // re-run after an interruption or on a folder that grew.
        let mut ids: HashMap<String, i64> = gal.identities()?.into_iter().map(|i| (i.name, i.id)).collect();
        let mut todo: Vec<(PathBuf, String, String)> = Vec::new();
        let mut skipped = 0usize;
        let pb = progress_bar(files.len(), "hashing");
        for (p, label) in &files {
            pb.inc(1);
            match std::fs::read(p) {
                Ok(bytes) => {
                    let sha = hex::encode(Sha256::digest(&bytes));
                    if let Some(id) = ids.get(label) {
                        if gal.has_source(*id, &sha)? {
                            skipped += 1;
                            continue;
                        }
                    }
                    todo.push((p.clone(), label.clone(), sha));
                }
                Err(e) => failures.push(format!("{}: {e}", p.display())),
            }
        }
        pb.finish_and_clear();
        let paths: Vec<PathBuf> = todo.iter().map(|t| t.0.clone()).collect();
        let pb = progress_bar(paths.len(), "enrolling");
        let mut enrolled = 0usize;
        let mut fatal: Option<anyhow::Error> = None;
        let mut i = 0usize;
        let cache = analyzer.analyze_files(&paths, true, |path, res| {
            let (_, label, sha) = &todo[i];
            i += 1;
            pb.inc(1);
            if fatal.is_some() {
                return;
            }
            let r = (|| -> anyhow::Result<FaceOutcome> {
                let img = res?;
                warnings.extend(img.warnings.iter().map(|w| format!("{}: {w}", path.display())));
                let decoded = if store_crop { Some(analyzer.decode_file(path)?) } else { None };
                let (face, _) = Gallery::face_to_enroll_gated(&analyzer, &img, sha, policy, decoded.as_ref().map(|d| &d.image), a.choice.min_enroll_score)?;
                // Get or create in the face's own transaction: the identity exists only with a
                // face, even when another process (a second `index` run) created it meanwhile.
                let commit = gal.enroll_faces(&EnrollTarget::GetOrCreate { name: label.clone(), metadata: serde_json::Value::Null }, vec![face])?;
                if let Some(rec) = &commit.identity {
                    ids.insert(rec.name.clone(), rec.id);
                    ids.insert(label.clone(), rec.id);
                }
                commit.outcomes.into_iter().next().ok_or_else(|| anyhow::anyhow!("no enrollment outcome"))
            })();
            match r {
                Ok(FaceOutcome::Added { .. }) => enrolled += 1,
                Ok(FaceOutcome::AlreadyEnrolled { .. }) => skipped += 1,
                Ok(FaceOutcome::EnrolledElsewhere { face_id, identity_id, identity }) => {
                    let e = GalleryError::DuplicateFace { path: path.to_path_buf(), face: face_id, identity_id, identity };
                    failures.push(format!("{e} (label {label})"));
                }
                Err(e) => match gallery_exit_code(&e) {
                    Some(c) if c != EXIT_BAD_INPUT => fatal = Some(e),
                    _ => failures.push(format!("{} ({label}): {}", path.display(), error_text(&e))),
                },
            }
        });
        pb.finish_and_clear();
        if let Some(e) = fatal {
            gal.save_index().ok();
            return Err(e);
        }
        if let Err(e) = cache {
            eprintln!("warning: {e}; results were not cached");
        }
        gal.save_index().ok();
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        // Totals from the store itself: another process may have enrolled meanwhile, and this
        // process's index holds only what it saw.
        let now = gal.identities()?;
        let total_faces: usize = now.iter().map(|i| i.faces).sum();
        // A bad CSV row is an entry that could not be enrolled: it counts as a file and a failure.
        let entries = files.len() + bad_rows.len();
        let summary = json!({
            "gallery": gal.dir(),
            "bad_rows": bad_rows,
            "warnings": warnings,
            "files": entries,
            "enrolled": enrolled,
            "skipped_unchanged": skipped,
            "failed": failures.len(),
            "identities": now.len(),
            "faces": total_faces,
        });
        if g.json {
            out_line(summary);
        } else {
            println!(
                "{entries} file(s): {enrolled} enrolled, {skipped} already enrolled (unchanged), {} failed; gallery now {total_faces} face(s) of {} identit{}",
                failures.len(),
                now.len(),
                if now.len() == 1 { "y" } else { "ies" }
            );
        }
        report_failures(&failures, files.len() + bad_rows.len())
    })
}

pub(crate) fn eval_identification(g: &Global, a: EvalIdentificationArgs) -> anyhow::Result<ExitCode> {
    run(g, || {
        let analyzer = load_analyzer(config(g, &a.model, true))?;
        if let Some(p) = analyzer.cache_problem() {
            eprintln!("warning: {p}");
        }
        let model = analyzer.model_id()?.clone();
        let mut images: Vec<(String, PathBuf)> = Vec::new();
        if !a.root.is_dir() {
            let what = if a.root.exists() { "is not a folder (one sub-folder of photos per identity)" } else { "does not exist" };
            return bad_input(g, format!("{} {what}", a.root.display()));
        }
        let entries = std::fs::read_dir(&a.root).with_context(|| format!("cannot read {}", a.root.display()))?;
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for d in &dirs {
            let name = d.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let mut files: Vec<PathBuf> = std::fs::read_dir(d)
                .with_context(|| format!("cannot read {}", d.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image_name(p))
                .collect();
            files.sort();
            images.extend(files.into_iter().map(|f| (name.clone(), f)));
        }
        if images.is_empty() {
            anyhow::bail!(Error::InvalidParameter { name: "root", message: format!("{}: no identity sub-folders with images", a.root.display()) });
        }
        // The protocol's gallery holds one template per identity (its first photo).
        let n_identities = images.iter().map(|i| i.0.as_str()).collect::<std::collections::HashSet<_>>().len();
        let threshold = match a.far {
            Some(far) => analyzer.threshold_at_far(far)?,
            None => analyzer.calibration()?.threshold_for_identification(a.fpir, n_identities)?,
        };
        let paths: Vec<PathBuf> = images.iter().map(|i| i.1.clone()).collect();
        let pb = progress_bar(paths.len(), "embedding");
        let (outcomes, cache_err) = faceprint::eval::embed_pair_images(&analyzer, &paths, None, |d, _| pb.set_position(d as u64));
        pb.finish_and_clear();
        if let Some(e) = cache_err {
            eprintln!("warning: {e}; results were not cached");
        }
        let unreadable: Vec<String> =
            outcomes.iter().filter_map(|(p, o)| o.failure.as_ref().filter(|f| *f != "no face").map(|f| format!("{}: {f}", p.display()))).collect();
        let items: Vec<gallery::eval::LabelledEmbedding> = images
            .iter()
            .map(|(id, p)| gallery::eval::LabelledEmbedding { identity: id.clone(), path: p.clone(), embedding: outcomes.get(p).and_then(|o| o.embedding.clone()) })
            .collect();
        let work = std::env::temp_dir().join(format!("faceprint-eval-identification-{}", std::process::id()));
        let points: Vec<(String, f32)> = analyzer
            .calibration()?
            .operating_points
            .iter()
            .filter(|p| p.supported)
            .map(|p| (format!("FAR={:e}", p.far_target), p.threshold))
            .collect();
        let rep = gallery::eval::evaluate(&items, &model, &threshold, &points, a.margin, &work, |m| eprintln!("{m}"))?;
        if let Some(out) = &a.out {
            std::fs::write(out, serde_json::to_string_pretty(&rep)?).with_context(|| format!("cannot write {}", out.display()))?;
        }
        if g.json {
            out_line(json!(rep));
        } else {
            let pct = |x: f64| format!("{:.2} %", 100.0 * x);
            println!("identification on {} ({} images), model {}, ambiguity margin {}", a.root.display(), images.len(), model, rep.ambiguity_margin);
            for (title, p) in [("one face per identity (first image)", &rep.single), ("several faces per identity (first half of identities with ≥ 4 images)", &rep.multi)] {
                println!(
                    "\n{title}: gallery {} faces, {} identities searched for + {} distractors; {} probes ({} without a face), {} enrollments without a face",
                    p.gallery_faces,
                    p.mated_identities,
                    p.distractors,
                    p.scorings.first().map_or(0, |s| s.mated),
                    p.probes_no_face,
                    p.gallery_no_face
                );
                for sc in &p.scorings {
                    println!("  scoring {:?}: rank-1 {}  rank-5 {}  ({} mated, {} non-mated searches)", sc.scoring, pct(sc.rank1), pct(sc.rank5), sc.mated, sc.non_mated);
                    println!("    {:<28} {:>9} {:>9} {:>9} {:>18}", "operating point", "threshold", "FNIR", "FPIR", "ambiguous (m/nm)");
                    for r in &sc.rates {
                        println!(
                            "    {:<28} {:>9.4} {:>9} {:>9} {:>18}",
                            r.operating_point,
                            r.threshold,
                            pct(r.fnir),
                            pct(r.fpir),
                            format!("{}/{}", r.ambiguous_mated, r.ambiguous_non_mated)
                        );
                    }
                }
            }
            println!("\nsearches: {:.1} s", rep.seconds);
        }
        if !unreadable.is_empty() {
            eprintln!("{} image(s) could not be read:", unreadable.len());
            for u in &unreadable {
                eprintln!("  {u}");
            }
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
        Ok(ExitCode::SUCCESS)
    })
}
