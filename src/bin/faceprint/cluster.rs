//! `faceprint cluster DIR...` (group a photo collection into people), `faceprint cluster
//! --gallery [PATH]` (cluster the faces enrolled in a gallery, to find split and mislabelled
//! enrollments) and `faceprint people ...` (the user's labels: name, merge, reject, list).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use sha2::{Digest, Sha256};

use faceprint::calibrate::Calibration;
use faceprint::cluster::gallery::{cluster_gallery, IdentityShare};
use faceprint::cluster::store::{FaceRecord, Ingested};
use faceprint::gallery::{Gallery, GalleryOptions};
use faceprint::cluster::{evaluate, threshold_for_model, ClusterError, ClusterParams, Collection, CollectionReport, DEFAULT_THRESHOLD};
use faceprint::quality::QualityGate;

use super::{config, expand_images, gate_of, load_analyzer, progress_bar, report_failures, trunc, Global, ModelArgs, EXIT_BAD_INPUT};

/// `p` made absolute with symlinks resolved as far as it exists (the rest appended as given).
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    for anc in abs.ancestors() {
        if let Ok(c) = std::fs::canonicalize(anc) {
            return c.join(abs.strip_prefix(anc).unwrap_or(Path::new("")));
        }
    }
    abs
}

/// The collection file a folder gets by default.
pub const STATE_FILE: &str = ".faceprint-people.sqlite";

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Folders (searched recursively) and image files
    #[arg(required_unless_present = "gallery")]
    inputs: Vec<PathBuf>,
    /// Cluster the faces enrolled in this gallery instead of photos (stored embeddings, no
    /// images read), and report identities that are probably one person and identities whose
    /// faces fall into different people. The identities are what is checked, so --state, labels
    /// and --html do not apply [PATH default: FACEPRINT_GALLERY, else <data dir>/gallery]
    #[arg(long, num_args = 0..=1, value_name = "PATH", conflicts_with_all = ["inputs", "state", "no_state", "html", "truth", "sweep"])]
    gallery: Option<Option<PathBuf>>,
    /// Collection file (faces, people, labels) [default: <first DIR>/.faceprint-people.sqlite]
    #[arg(long, conflicts_with = "no_state")]
    state: Option<PathBuf>,
    /// Keep nothing: cluster in memory (no labels, no incremental runs)
    #[arg(long)]
    no_state: bool,
    /// Write a browsable contact sheet (index.html + thumbs/) into this folder
    #[arg(long)]
    html: Option<PathBuf>,
    /// Allow two faces of the same photo in one person (collages, contact sheets)
    #[arg(long)]
    allow_same_photo: bool,
    /// Merge threshold: mean cosine similarity over all cross pairs of two groups, in [-1, 1]
    /// [default: the model's calibrated threshold at FAR 1e-4 + 0.067, i.e. 0.35 for the default model]
    #[arg(long, allow_hyphen_values = true)]
    threshold: Option<f32>,
    /// Minimum faces for a person (smaller groups are left unassigned)
    #[arg(long, allow_negative_numbers = true, default_value_t = ClusterParams::default().min_faces)]
    min_faces: usize,
    /// Neighbours per face in the candidate graph
    #[arg(long, allow_negative_numbers = true, default_value_t = ClusterParams::default().neighbours)]
    neighbours: usize,
    /// Score against true identities: `folders` = each image's parent folder names the person of
    /// its face nearest the image centre (LFW layout); other faces are not scored
    #[arg(long, value_parser = ["folders"])]
    truth: Option<String>,
    /// With --truth and --no-state: also sweep the threshold and write <PREFIX>.svg/.png/.json
    #[arg(long, requires = "truth")]
    sweep: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
pub struct PeopleArgs {
    /// Collection file [default: <--dir>/.faceprint-people.sqlite]
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// Folder whose collection file to use
    #[arg(long, global = true, default_value = ".")]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: PeopleCmd,
}

#[derive(Subcommand, Debug)]
pub enum PeopleCmd {
    /// List people: id, name, faces, confirmed faces
    List,
    /// Name a person (its current faces are confirmed and stay together in later runs)
    Name {
        /// Person id
        person: u64,
        /// The name
        name: String,
    },
    /// Merge person FROM into person INTO (all their faces are confirmed as one person)
    Merge {
        /// Person that remains
        into: u64,
        /// Person merged into it (deleted)
        from: u64,
    },
    /// "This face is not this person": remove a face from its person for good
    Reject {
        /// Face id (from `faceprint cluster --json` or the contact sheet)
        face: u64,
        /// The person it is not [default: its current person]
        #[arg(long, allow_negative_numbers = true)]
        person: Option<u64>,
    },
}

/// Exit code of a clustering error: parameters and model mismatch are usage (2), missing people
/// or faces and damaged files are bad input (3).
fn cluster_exit(e: &ClusterError) -> u8 {
    match e {
        ClusterError::Gallery(ge) if ge.is_bad_input() => EXIT_BAD_INPUT,
        ClusterError::Gallery(ge) if ge.is_usage() => 2,
        ClusterError::InvalidParameter { .. } | ClusterError::ModelMismatch { .. } => 2,
        ClusterError::NoPerson(_) | ClusterError::NoFace(_) | ClusterError::BadEmbedding { .. } | ClusterError::Store { .. } => EXIT_BAD_INPUT,
        _ => 1,
    }
}

fn fail(g: &Global, e: ClusterError) -> ExitCode {
    let code = cluster_exit(&e);
    eprintln!("error: {e}");
    if g.json {
        println!("{}", json!({"error": e.to_string(), "exit_code": code}));
    }
    ExitCode::from(code)
}

fn sha256_file(p: &Path) -> std::io::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(p)?)))
}

/// The parent folder's name: the identity in an identity-per-folder layout.
fn folder_of(p: &Path) -> String {
    p.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn cluster_cmd(g: &Global, a: ClusterArgs) -> anyhow::Result<ExitCode> {
    if a.sweep.is_some() && !a.no_state {
        anyhow::bail!(faceprint::Error::InvalidParameter { name: "sweep", message: "--sweep re-clusters many times: use it with --no-state".into() });
    }
    let mut params = ClusterParams {
        threshold: a.threshold.unwrap_or(DEFAULT_THRESHOLD),
        neighbours: a.neighbours,
        min_faces: a.min_faces,
        same_photo_cannot_link: !a.allow_same_photo,
        quality_gate: if a.model.no_quality_gate { QualityGate::off() } else { gate_of(&a.model) },
        ..Default::default()
    };
    if let Err(e) = params.validate() {
        return Ok(fail(g, e));
    }
    if let Some(gallery) = &a.gallery {
        return cluster_gallery_cmd(g, gallery.as_deref(), a.threshold, params);
    }
    let (paths, mut failures) = expand_images(&a.inputs);
    let total = paths.len() + failures.len();
    let state = if a.no_state {
        None
    } else {
        Some(match &a.state {
            Some(s) => s.clone(),
            None => {
                let first = &a.inputs[0];
                if !first.is_dir() {
                    anyhow::bail!(faceprint::Error::InvalidParameter {
                        name: "state",
                        message: format!("{} is not a folder: give --state FILE (or --no-state)", first.display())
                    });
                }
                first.join(STATE_FILE)
            }
        })
    };
    let mut coll = match match &state {
        Some(s) => Collection::open(s),
        None => Collection::in_memory(),
    } {
        Ok(c) => c,
        Err(ClusterError::Store { path, message }) => {
            let message = format!("{message} (give --state FILE in a writable folder, or --no-state)");
            return Ok(fail(g, ClusterError::Store { path, message }));
        }
        Err(e) => return Ok(fail(g, e)),
    };
    // A contact sheet written inside a photo folder would be clustered by the next run.
    if let Some(h) = &a.html {
        let sheet = resolved(h);
        for d in a.inputs.iter().filter(|d| d.is_dir()) {
            if sheet.starts_with(resolved(d)) {
                let e = ClusterError::InvalidParameter {
                    name: "html",
                    message: format!(
                        "{} is inside the photo folder {}: the next run would cluster its thumbnails; write the contact sheet elsewhere",
                        h.display(),
                        d.display()
                    ),
                };
                return Ok(fail(g, e));
            }
        }
    }
    let analyzer = load_analyzer(config(g, &a.model, true))?;
    let model = analyzer.model_id()?.to_string();
    if a.threshold.is_none() {
        match analyzer.threshold_at_far(1e-4) {
            Ok(t) => params.threshold = threshold_for_model(t.similarity),
            Err(e) => eprintln!("warning: {e}; using the merge threshold measured for the default model, {DEFAULT_THRESHOLD} (or give --threshold)"),
        }
    }
    if let Err(e) = coll.check_model(&model) {
        return Ok(fail(g, e));
    }
    let key = analyzer.pipeline_key();
    // Content hashes; images already stored with this content and pipeline are not analysed again
    // (unless scoring against the truth, which needs each image's centre face).
    let pb = if paths.len() > 20 { progress_bar(paths.len(), "images") } else { indicatif::ProgressBar::hidden() };
    let mut todo: Vec<PathBuf> = Vec::new();
    let mut hashes: HashMap<PathBuf, (PathBuf, String)> = HashMap::new();
    for p in &paths {
        match sha256_file(p) {
            Ok(h) => {
                let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                if a.truth.is_none() && coll.is_current(&canon, &h, &key)? {
                    pb.inc(1);
                } else {
                    todo.push(p.clone());
                }
                hashes.insert(p.clone(), (canon, h));
            }
            Err(e) => {
                pb.inc(1);
                failures.push((p.clone(), format!("{}: {e}", p.display())));
            }
        }
    }
    let mut centre: HashMap<PathBuf, Option<[f32; 4]>> = HashMap::new();
    let (mut added, mut redetected) = (0usize, 0usize);
    let mut store_error: Option<ClusterError> = None;
    let cache_result = analyzer.analyze_files(&todo, true, |path, res| {
        pb.inc(1);
        match res {
            Ok(img) => {
                for w in &img.warnings {
                    pb.suspend(|| eprintln!("warning: {}: {w}", path.display()));
                }
                let Some((canon, h)) = hashes.get(path) else { return };
                if a.truth.is_some() {
                    centre.insert(canon.clone(), faceprint::eval::centre_face(&img).map(|f| f.detection.bbox));
                }
                if store_error.is_some() {
                    return;
                }
                match coll.ingest(canon, h, &key, &img) {
                    Ok(Ingested::Added) => added += 1,
                    Ok(Ingested::Redetected { .. }) => redetected += 1,
                    Ok(Ingested::Unchanged) => {}
                    Err(e) => store_error = Some(e),
                }
            }
            Err(e) => failures.push((path.to_path_buf(), e.to_string())),
        }
    });
    pb.finish_and_clear();
    if let Err(e) = cache_result {
        eprintln!("warning: {e}; results were not cached");
    }
    if let Some(e) = store_error {
        return Ok(fail(g, e));
    }
    let pruned = coll.prune_missing()?;
    let report = match coll.recluster(&params) {
        Ok(r) => r,
        Err(e) => return Ok(fail(g, e)),
    };
    let metrics = a.truth.as_ref().map(|_| score(&report, &paths, &hashes, &centre));
    let mut sweep_files = Vec::new();
    if let Some(prefix) = &a.sweep {
        sweep_files = sweep(&mut coll, &params, prefix, &paths, &hashes, &centre)?;
        // Leave the collection as the requested parameters cluster it.
        coll.recluster(&params).map_err(faceprint::Error::from)?;
    }
    let html = match &a.html {
        Some(dir) => Some(write_html(dir, &report, &analyzer.config().decode).with_context(|| format!("writing the contact sheet into {}", dir.display()))?),
        None => None,
    };
    if g.json {
        let mut v = json!({
            "state": state.as_ref().map(|s| s.display().to_string()),
            "model": model,
            "params": params,
            "images": report.images,
            "faces": report.faces,
            "people": report.people,
            "unassigned": report.unassigned,
            "refused_by_quality": report.refused,
            "failed": failures.iter().map(|(p, e)| json!({"image": p, "error": e})).collect::<Vec<_>>(),
        });
        if let Some(m) = &metrics {
            v["metrics"] = json!(m);
        }
        if let Some(h) = &html {
            v["html"] = json!(h);
        }
        if !sweep_files.is_empty() {
            v["sweep"] = json!(sweep_files);
        }
        println!("{v}");
    } else {
        print_report(&report, state.as_deref(), &model, added, redetected, pruned);
        if let Some(m) = &metrics {
            println!(
                "scored {} faces ({} identities): pairwise P {:.4} R {:.4} F1 {:.4}; BCubed P {:.4} R {:.4} F1 {:.4}; {} clusters; unassigned {:.1}%",
                m.faces,
                m.identities,
                m.pairwise.precision,
                m.pairwise.recall,
                m.pairwise.f1,
                m.bcubed.precision,
                m.bcubed.recall,
                m.bcubed.f1,
                m.clusters,
                m.unassigned_share * 100.0
            );
        }
        for f in &sweep_files {
            println!("sweep: {}", f.display());
        }
        if let Some(h) = &html {
            println!("contact sheet: {}", h.display());
        }
    }
    Ok(report_failures(failures.iter().map(|(_, m)| m.as_str()), total))
}

/// Scores the people against folder identities: one labelled face per image (nearest the centre;
/// an image without one counts as an unassigned face).
fn score(
    r: &CollectionReport,
    paths: &[PathBuf],
    hashes: &HashMap<PathBuf, (PathBuf, String)>,
    centre: &HashMap<PathBuf, Option<[f32; 4]>>,
) -> faceprint::cluster::ClusterMetrics {
    let mut person_of: HashMap<(PathBuf, [u32; 4]), u64> = HashMap::new();
    let k = |b: [f32; 4]| b.map(f32::to_bits);
    for p in &r.people {
        for f in &p.faces {
            person_of.insert((f.image.clone(), k(f.bbox)), p.id);
        }
    }
    let (mut predicted, mut truth) = (Vec::new(), Vec::new());
    for p in paths {
        let canon = hashes.get(p).map_or_else(|| p.clone(), |(c, _)| c.clone());
        let assigned = centre.get(&canon).copied().flatten().and_then(|b| person_of.get(&(canon.clone(), k(b))).copied());
        predicted.push(assigned);
        truth.push(folder_of(p));
    }
    evaluate(&predicted, &truth)
}

/// Re-clusters at a range of thresholds; writes the precision/recall curves and a JSON table.
fn sweep(
    coll: &mut Collection,
    base: &ClusterParams,
    prefix: &Path,
    paths: &[PathBuf],
    hashes: &HashMap<PathBuf, (PathBuf, String)>,
    centre: &HashMap<PathBuf, Option<[f32; 4]>>,
) -> anyhow::Result<Vec<PathBuf>> {
    let thresholds: Vec<f32> = (0..=16).map(|i| 0.15 + 0.025 * i as f32).collect();
    let mut rows = Vec::new();
    let pb = progress_bar(thresholds.len(), "sweep");
    for &t in &thresholds {
        let p = ClusterParams { threshold: t, ..base.clone() };
        let r = coll.recluster(&p).map_err(faceprint::Error::from)?;
        let m = score(&r, paths, hashes, centre);
        rows.push((t, m));
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some(d) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let series = |f: &dyn Fn(&faceprint::cluster::ClusterMetrics) -> f64| -> Vec<(f64, f64)> { rows.iter().map(|(t, m)| (*t as f64, f(m))).collect() };
    let pp = series(&|m| m.pairwise.precision);
    let pr = series(&|m| m.pairwise.recall);
    let bp = series(&|m| m.bcubed.precision);
    let br = series(&|m| m.bcubed.recall);
    let mut files = faceprint::plot::line_plot(
        prefix,
        "Clustering LFW: precision and recall vs merge threshold (mean cross-pair cosine similarity)",
        "merge threshold",
        "precision / recall",
        &[("pairwise precision", &pp), ("pairwise recall", &pr), ("BCubed precision", &bp), ("BCubed recall", &br)],
    )
    .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let mut table = prefix.as_os_str().to_owned();
    table.push(".json");
    let table = PathBuf::from(table);
    let v: Vec<serde_json::Value> = rows.iter().map(|(t, m)| json!({"threshold": (*t as f64 * 1000.0).round() / 1000.0, "metrics": m})).collect();
    std::fs::write(&table, serde_json::to_string_pretty(&v)? + "\n").with_context(|| format!("writing {}", table.display()))?;
    files.push(table);
    Ok(files)
}

fn print_report(r: &CollectionReport, state: Option<&Path>, model: &str, added: usize, redetected: usize, pruned: usize) {
    println!(
        "collection {}: {} images ({} new, {} re-detected, {} removed), {} faces; model {}",
        state.map_or("(in memory)".to_string(), |s| s.display().to_string()),
        r.images,
        added,
        redetected,
        pruned,
        r.faces,
        model
    );
    println!("{:>7}  {:<24} {:>6}  faces (face id: image)", "person", "name", "faces");
    for p in &r.people {
        let ex: Vec<String> = p.faces.iter().take(3).map(|f| format!("{}: {}", f.face_id, f.image.display())).collect();
        println!("{:>7}  {:<24} {:>6}  {}{}", p.id, p.name.as_deref().unwrap_or("-"), p.faces.len(), ex.join(", "), if p.faces.len() > 3 { ", …" } else { "" });
    }
    println!(
        "{}; {} unassigned; {} refused by the quality gate",
        count(r.people.len(), "person", "people"),
        count(r.unassigned.len(), "face", "faces"),
        count(r.refused.len(), "face", "faces")
    );
}

/// "1 person", "2 people".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes `dir/index.html` and `dir/thumbs/<face id>.jpg` (crops from the oriented images, box
/// plus 20% margin, 112 px high). Returns the page's path. Images that cannot be read any more
/// get a placeholder and a warning.
fn write_html(dir: &Path, r: &CollectionReport, decode: &faceprint::imageio::DecodeOptions) -> anyhow::Result<PathBuf> {
    let thumbs = dir.join("thumbs");
    std::fs::create_dir_all(&thumbs).with_context(|| format!("creating {}", thumbs.display()))?;
    let mut by_image: HashMap<&Path, Vec<&FaceRecord>> = HashMap::new();
    for f in r.people.iter().flat_map(|p| p.faces.iter()).chain(&r.unassigned).chain(&r.refused) {
        by_image.entry(f.image.as_path()).or_default().push(f);
    }
    let mut missing = std::collections::HashSet::new();
    let pb = if by_image.len() > 20 { progress_bar(by_image.len(), "thumbnails") } else { indicatif::ProgressBar::hidden() };
    let mut images: Vec<(&Path, Vec<&FaceRecord>)> = by_image.into_iter().collect();
    images.sort_by(|a, b| a.0.cmp(b.0));
    for (path, faces) in images {
        pb.inc(1);
        let img = match faceprint::imageio::open(path, decode) {
            Ok(d) => d.image,
            Err(e) => {
                pb.suspend(|| eprintln!("warning: contact sheet: {}: {e}", path.display()));
                missing.extend(faces.iter().map(|f| f.face_id));
                continue;
            }
        };
        for f in faces {
            let [x1, y1, x2, y2] = f.bbox;
            let (w, h) = (x2 - x1, y2 - y1);
            let (mx, my) = (0.2 * w, 0.2 * h);
            let left = (x1 - mx).max(0.0) as u32;
            let top = (y1 - my).max(0.0) as u32;
            let right = ((x2 + mx).min(img.width() as f32) as u32).max(left + 1).min(img.width());
            let bottom = ((y2 + my).min(img.height() as f32) as u32).max(top + 1).min(img.height());
            if right <= left || bottom <= top {
                missing.insert(f.face_id);
                continue;
            }
            let crop = image::imageops::crop_imm(&img, left, top, right - left, bottom - top).to_image();
            let th = 112u32;
            let tw = ((crop.width() as f32 * th as f32 / crop.height() as f32).round() as u32).max(1);
            let small = image::imageops::resize(&crop, tw, th, image::imageops::FilterType::Triangle);
            let out = thumbs.join(format!("{}.jpg", f.face_id));
            image::DynamicImage::ImageRgb8(small).save_with_format(&out, image::ImageFormat::Jpeg).with_context(|| format!("writing {}", out.display()))?;
        }
    }
    pb.finish_and_clear();
    let thumb = |f: &FaceRecord| -> String {
        let title = format!(
            "face {} — {} (face {} of the image){}{}",
            f.face_id,
            f.image.display(),
            f.face,
            f.similarity.map(|s| format!(", similarity to the person {s:.3}")).unwrap_or_default(),
            f.refused.as_ref().map(|r| format!(", refused: {r}")).unwrap_or_default()
        );
        if missing.contains(&f.face_id) {
            format!("<div class=\"face missing\" title=\"{}\">{}</div>", html_escape(&title), f.face_id)
        } else {
            format!(
                "<figure class=\"face\" title=\"{t}\"><img src=\"thumbs/{id}.jpg\" alt=\"face {id}\" loading=\"lazy\"><figcaption>{id}{s}</figcaption></figure>",
                t = html_escape(&title),
                id = f.face_id,
                s = f.similarity.map(|s| format!(" · {s:.2}")).unwrap_or_default()
            )
        }
    };
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>People</h1><p class=\"summary\">{} people · {} images · {} faces · {} unassigned · {} refused by the quality gate. Hover a face for its file; the number is its face id (for <code>faceprint people reject</code>), then its similarity to the person.</p>\n",
        r.people.len(),
        r.images,
        r.faces,
        r.unassigned.len(),
        r.refused.len()
    ));
    for p in &r.people {
        body.push_str(&format!(
            "<section class=\"person\" id=\"person-{id}\"><h2>{name} <span class=\"meta\">person {id} · {n} faces</span></h2><div class=\"row\">",
            id = p.id,
            name = html_escape(p.name.as_deref().unwrap_or("(unnamed)")),
            n = p.faces.len()
        ));
        for f in &p.faces {
            body.push_str(&thumb(f));
        }
        body.push_str("</div></section>\n");
    }
    for (title, list) in [("Unassigned", &r.unassigned), ("Refused by the quality gate", &r.refused)] {
        if list.is_empty() {
            continue;
        }
        body.push_str(&format!("<section class=\"rest\"><h2>{title} <span class=\"meta\">{} faces</span></h2><div class=\"row\">", list.len()));
        for f in list {
            body.push_str(&thumb(f));
        }
        body.push_str("</div></section>\n");
    }
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>faceprint: people</title>\n<style>\n\
body{{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}}\n\
h1{{margin:0 0 .3em}} .summary{{color:#555}}\n\
section{{margin:1em 0;padding:.5em .8em;background:#fff;border:1px solid #ddd;border-radius:6px}}\n\
section.rest{{background:#f3f3f3}}\n\
h2{{font-size:1.05em;margin:.2em 0 .5em}} .meta{{font-weight:normal;color:#777;font-size:.9em}}\n\
.row{{display:flex;flex-wrap:wrap;gap:6px}}\n\
figure.face{{margin:0;text-align:center}} figure.face img{{height:112px;display:block;border-radius:3px}}\n\
figcaption{{font-size:.75em;color:#666}}\n\
.missing{{width:90px;height:112px;background:#ccc;display:flex;align-items:center;justify-content:center;color:#666}}\n\
</style></head><body>\n{body}</body></html>\n"
    );
    let index = dir.join("index.html");
    let mut f = std::fs::File::create(&index).with_context(|| format!("creating {}", index.display()))?;
    f.write_all(page.as_bytes()).with_context(|| format!("writing {}", index.display()))?;
    Ok(index)
}

pub fn people_cmd(g: &Global, a: PeopleArgs) -> anyhow::Result<ExitCode> {
    let path = a.state.clone().unwrap_or_else(|| a.dir.join(STATE_FILE));
    if !path.is_file() {
        eprintln!("error: no collection at {}: run `faceprint cluster DIR` first (or give --state FILE)", path.display());
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let mut coll = match Collection::open(&path) {
        Ok(c) => c,
        Err(e) => return Ok(fail(g, e)),
    };
    let done = |what: serde_json::Value, text: String| {
        if g.json {
            println!("{what}");
        } else {
            println!("{text}");
        }
    };
    let r = match a.cmd {
        PeopleCmd::List => coll.people().map(|people| {
            if g.json {
                println!("{}", json!({"state": path, "people": people}));
            } else {
                println!("{:>7}  {:<24} {:>6} {:>10}", "person", "name", "faces", "confirmed");
                for p in &people {
                    println!("{:>7}  {:<24} {:>6} {:>10}", p.id, p.name.as_deref().unwrap_or("-"), p.faces, p.confirmed);
                }
            }
        }),
        PeopleCmd::Name { person, name } => coll
            .name_person(person, &name)
            .map(|_| done(json!({"named": person, "name": name.trim()}), format!("person {person} is now {:?}; its faces are confirmed", name.trim()))),
        PeopleCmd::Merge { into, from } => {
            coll.merge_people(into, from).map(|_| done(json!({"merged": from, "into": into}), format!("person {from} merged into {into}")))
        }
        PeopleCmd::Reject { face, person } => coll
            .reject_face(face, person)
            .map(|p| done(json!({"rejected_face": face, "person": p}), format!("face {face} is not person {p}: removed, and kept out in later runs"))),
    };
    Ok(match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(g, e),
    })
}

/// `faceprint cluster --gallery [PATH]`: clusters the enrolled faces and reports the people, the
/// identities that are probably one person and the identities spread over several people.
fn cluster_gallery_cmd(g: &Global, dir: Option<&Path>, threshold: Option<f32>, mut params: ClusterParams) -> anyhow::Result<ExitCode> {
    let data = faceprint::models::data_dir(g.data_dir.as_deref());
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os("FACEPRINT_GALLERY").filter(|v| !v.is_empty()).map_or_else(|| Gallery::default_dir(&data), PathBuf::from),
    };
    let gal = match Gallery::open(&dir, GalleryOptions::default()) {
        Ok(gal) => gal,
        Err(e) => return Ok(fail(g, ClusterError::Gallery(e))),
    };
    if gal.is_empty() {
        // Agreement over no pairs would print as a perfect 1.0000.
        let msg = format!("gallery {} has no enrolled faces: nothing to cluster", dir.display());
        eprintln!("error: {msg}");
        if g.json {
            println!("{}", json!({"error": msg, "exit_code": EXIT_BAD_INPUT}));
        }
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    // The gallery's model sets the threshold, through its calibration, as for photo folders.
    if threshold.is_none() {
        match Calibration::for_model(&data, gal.model_id()).map_err(faceprint::Error::from).and_then(|c| Ok(c.threshold_at(1e-4)?)) {
            Ok(t) => params.threshold = threshold_for_model(t.similarity),
            Err(e) => eprintln!(
                "warning: {e}; using the merge threshold measured for the default model, {DEFAULT_THRESHOLD} (or give --threshold)"
            ),
        }
    }
    let r = match cluster_gallery(&gal, &params) {
        Ok(r) => r,
        Err(e) => return Ok(fail(g, e)),
    };
    if g.json {
        let mut v = json!(r);
        v["gallery"] = json!(dir);
        v["model"] = json!(gal.model_id());
        v["params"] = json!(params);
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "gallery {}: {} faces of {} identities; model {}; merge threshold {:.3}",
        dir.display(),
        r.faces,
        r.identities,
        gal.model_id(),
        params.threshold
    );
    let m = &r.agreement;
    println!(
        "{}; {} unassigned; {} refused by the quality gate. Agreement with the identities: pairwise P {:.4} R {:.4}; BCubed P {:.4} R {:.4}",
        count(r.people.len(), "person", "people"),
        count(r.unassigned.len(), "face", "faces"),
        r.refused.len(),
        m.pairwise.precision,
        m.pairwise.recall,
        m.bcubed.precision,
        m.bcubed.recall
    );
    let share = |s: &IdentityShare| match (s.faces, s.of) {
        (_, 1) => format!("{} (its only face)", s.name),
        (f, o) if f == o => format!("{} (all {o} faces)", s.name),
        (f, o) => format!("{} ({f} of {o} faces)", s.name),
    };
    let ids = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    println!();
    if r.same_person.is_empty() {
        println!("No person holds faces of two identities.");
    } else {
        println!("Probably the same person (one person holding several identities: split enrollment, or faces enrolled under the wrong name):");
        for sp in &r.same_person {
            let list: Vec<String> = sp.identities.iter().map(share).collect();
            println!("  person {} (mean similarity across the identities {:.3}): {}", sp.person, sp.similarity, list.join(", "));
        }
    }
    if r.mixed_identities.is_empty() {
        println!("No identity has faces in two people.");
    } else {
        println!("Identities whose faces fall into different people (probably mislabelled enrollments; `faceprint gallery remove --face ID`):");
        for mi in &r.mixed_identities {
            let list: Vec<String> = mi.people.iter().map(|p| format!("person {} (mostly {}): faces {}", p.person, p.majority, ids(&p.faces))).collect();
            let lone = if mi.unassigned.is_empty() { String::new() } else { format!("; unassigned: faces {}", ids(&mi.unassigned)) };
            println!("  {} (id {}, {} faces): {}{}", mi.name, mi.identity_id, mi.faces, list.join("; "), lone);
        }
    }
    for d in &r.duplicate_faces {
        println!("Same face of one image enrolled more than once: faces {} ({})", ids(&d.face_ids), d.identities.join(", "));
    }
    println!();
    println!("{:>7}  {:<40} faces (face id: identity, similarity to the person)", "person", "identities");
    for p in &r.people {
        let names: Vec<String> = p.identities.iter().map(|s| format!("{} ×{}", s.name, s.faces)).collect();
        let faces: Vec<String> = p.faces.iter().map(|f| format!("{}: {} {:.2}", f.face_id, f.identity, f.similarity.unwrap_or(f32::NAN))).collect();
        println!("{:>7}  {:<40} {}", p.person, trunc(&names.join(", "), 40), faces.join(", "));
    }
    if !r.unassigned.is_empty() {
        let faces: Vec<String> = r.unassigned.iter().map(|f| format!("{}: {}", f.face_id, f.identity)).collect();
        println!("unassigned: {}", faces.join(", "));
    }
    for f in &r.refused {
        println!("refused: face {} ({}): {}", f.face.face_id, f.face.identity, f.reason);
    }
    Ok(ExitCode::SUCCESS)
}
