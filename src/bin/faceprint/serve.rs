//! `faceprint serve`: the HTTP service ([`faceprint::server`]).
//!
//! Settings come from, in increasing precedence: built-in defaults, the TOML file (`--config`),
//! environment variables (`FACEPRINT_*`), flags.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use faceprint::pipeline::AnalyzerConfig;
use faceprint::quality::QualityGate;
use faceprint::runtime::RuntimeOptions;
use faceprint::server::{self, AnalyzerSource, ApiKeyEntry, ServerConfig, ServerError};
use faceprint::Error;

use super::Global;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// TOML file with any of the settings below (names as in README "HTTP service")
    #[arg(long, env = "FACEPRINT_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "FACEPRINT_BIND")]
    bind: Option<SocketAddr>,
    /// API key as NAME:SCOPE:SHA256 (scope read or admin; SHA256 from --hash-key); repeatable.
    /// Without keys the service is open, which is allowed only on a loopback address
    #[arg(long = "api-key", env = "FACEPRINT_API_KEYS", value_delimiter = ',')]
    api_keys: Vec<ApiKeyEntry>,
    /// Allow running without API keys on a non-loopback address
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Largest request body, bytes [default: 16777216]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest image, pixels (width × height) [default: 40000000]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_MAX_IMAGE_PIXELS")]
    max_image_pixels: Option<u64>,
    /// Time limit per request, milliseconds [default: 30000]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Requests running inference at once [default: 8]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_MAX_CONCURRENT_INFERENCES")]
    max_concurrent_inferences: Option<usize>,
    /// Requests waiting for an inference slot before 503 [default: 64]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_MAX_QUEUE")]
    max_queue: Option<usize>,
    /// Share recogniser batches between concurrent requests (true/false) [default: true]
    #[arg(long, env = "FACEPRINT_BATCHING")]
    batching: Option<bool>,
    /// Longest wait of a face for a shared batch, microseconds [default: 2000]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_BATCH_WAIT_US")]
    batch_wait_us: Option<u64>,
    /// Faces per shared batch, also the recogniser's largest batch [default: 8]
    #[arg(long, allow_negative_numbers = true, env = "FACEPRINT_MAX_BATCH")]
    max_batch: Option<usize>,
    /// Allowed CORS origin (repeatable; `*` for any) [default: none, CORS off]
    #[arg(long = "cors-origin", env = "FACEPRINT_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Operating point when a request names none, FAR [default: 1e-3]
    #[arg(long, allow_hyphen_values = true, env = "FACEPRINT_DEFAULT_FAR")]
    default_far: Option<f64>,
    /// Gallery directory [default: <data>/gallery]; it must exist (`faceprint gallery init`) unless --create-gallery
    #[arg(long, env = "FACEPRINT_GALLERY")]
    gallery: Option<PathBuf>,
    /// Create an empty gallery for the recogniser's model when the gallery directory holds none
    #[arg(long)]
    create_gallery: bool,
    /// Log format: text or json [default: text]
    #[arg(long, env = "FACEPRINT_LOG_FORMAT")]
    log_format: Option<String>,
    /// Sessions per model = inferences running truly in parallel [default: number of cores]
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// ONNX Runtime shared library [default: the installed one]
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Do not refuse faces below the quality minimums in verify, identify and enrollment
    #[arg(long)]
    no_quality_gate: bool,
    /// Flip test (more accurate, twice the recogniser time)
    #[arg(long)]
    flip: bool,
    /// Print the SHA-256 of an API key read from stdin (for --api-key / api_keys) and exit
    #[arg(long, conflicts_with = "generate_key")]
    hash_key: bool,
    /// Print a new random API key (256 bits, hex) and its SHA-256, and exit
    #[arg(long)]
    generate_key: bool,
}

/// The effective settings: defaults < TOML file < environment < flags.
fn settings(a: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut c = match &a.config {
        Some(p) => ServerConfig::from_toml_file(p).map_err(config_err)?,
        None => ServerConfig::default(),
    };
    macro_rules! set {
        ($($f:ident => $t:ident),*) => { $( if let Some(v) = a.$f.clone() { c.$t = v; } )* };
    }
    set!(bind => bind, max_body_bytes => max_body_bytes, max_image_pixels => max_pixels, request_timeout_ms => request_timeout_ms,
         max_concurrent_inferences => max_concurrent_inferences, max_queue => max_queue, batching => batching,
         batch_wait_us => batch_wait_us, max_batch => max_batch, default_far => default_far, log_format => log_format);
    if a.gallery.is_some() {
        c.gallery = a.gallery.clone();
    }
    if a.create_gallery {
        c.create_gallery = true;
    }
    if !a.api_keys.is_empty() {
        c.api_keys = a.api_keys.clone();
    }
    if !a.cors_origins.is_empty() {
        c.cors_origins = a.cors_origins.clone();
    }
    if a.allow_unauthenticated {
        c.allow_unauthenticated = true;
    }
    c.validate().map_err(config_err)?;
    Ok(c)
}

fn config_err(e: ServerError) -> anyhow::Error {
    Error::InvalidParameter { name: "serve", message: e.to_string() }.into()
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FACEPRINT_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a redirected log (file, journald) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if format == "json" { b.json().try_init() } else { b.try_init() };
}

pub(crate) fn run(g: &Global, a: &ServeArgs) -> anyhow::Result<ExitCode> {
    if a.hash_key {
        let mut key = String::new();
        std::io::stdin().read_to_string(&mut key).context("reading the key from stdin")?;
        let key = key.trim();
        if key.is_empty() {
            anyhow::bail!(Error::InvalidParameter { name: "hash-key", message: "no key on stdin".into() });
        }
        println!("{}", server::hash_key(key));
        return Ok(ExitCode::SUCCESS);
    }
    if a.generate_key {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
        let key = hex::encode(bytes);
        println!("key:    {key}\nsha256: {}", server::hash_key(&key));
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = settings(a)?;
    init_logs(&cfg.log_format);
    let analyzer = AnalyzerConfig {
        data_dir: g.data_dir.clone(),
        runtime: RuntimeOptions { library: a.ort_lib.clone(), ..Default::default() },
        workers: a.workers.map_or_else(super::cores, usize::from),
        flip: a.flip,
        // The recogniser's largest batch is the shared batch: it fixes the batch shapes run and
        // warmed up at start (`embed::padded_batch`), and with them the memory held.
        batch_size: cfg.max_batch,
        quality_gate: if a.no_quality_gate { QualityGate::off() } else { QualityGate::default() },
        cache: None,
        ..Default::default()
    };
    let handle = server::start(cfg, AnalyzerSource::Load(analyzer), true).map_err(|e| match e {
        ServerError::Config(_) | ServerError::Bind { .. } => config_err(e),
        other => anyhow::Error::new(other),
    })?;
    eprintln!("faceprint serving on http://{} (SIGTERM or Ctrl-C stops it gracefully)", handle.addr());
    match handle.wait() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A missing or wrong gallery is misuse (exit 2), as in the gallery commands.
        Err(ServerError::Load(Error::Gallery(ge))) if ge.is_usage() => Err(Error::InvalidParameter { name: "gallery", message: ge.to_string() }.into()),
        Err(ServerError::Load(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}
