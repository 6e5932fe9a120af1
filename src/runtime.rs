//! ONNX Runtime: loading the shared library once per process and creating sessions.
//!
//! faceprint links ONNX Runtime dynamically (`ort` with `load-dynamic`); the library file is the
//! one `faceprint models install` extracts from the pinned `onnxruntime==1.31.1` wheel, or any
//! ONNX Runtime ≥ 1.31 given by path ([`RuntimeOptions::library`] or `ORT_DYLIB_PATH`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::models::{self, ModelError, Role};

/// How sessions are created. Defaults: the installed library, one intra-op thread pool for the
/// process with as many threads as available cores, full graph optimization.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// The ONNX Runtime shared library. Default: `$ORT_DYLIB_PATH` if set, else
    /// `<data>/runtime/libonnxruntime.so.1.31.1`.
    pub library: Option<PathBuf>,
    /// Threads of the process-wide ONNX Runtime intra-op pool, fixed by the first [`init`].
    /// `None` = available cores.
    pub intra_threads: Option<usize>,
    /// Sessions per model, for running several images at once ([`SessionPool`]); 0 or 1 = one
    /// session on the shared pool. With more than one, each session runs single-threaded on its
    /// caller's thread, so N concurrent inferences use N cores without contending for a pool.
    pub sessions: usize,
}

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `opts.library` (or the default location under `data`) once per process.
/// Later calls return the first call's outcome; the library cannot be switched within a process.
///
/// # Errors
/// [`ModelError::Missing`] / [`ModelError::ChecksumMismatch`] for the default library file,
/// [`ModelError::Runtime`] when it cannot be loaded (wrong version, not a library).
pub fn init(data: &Path, opts: &RuntimeOptions) -> Result<(), ModelError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if ENV.get().is_none() {
        let env = load(data, opts);
        let _ = ENV.set(env);
    }
    match ENV.get().expect("set above") {
        Ok(_) => Ok(()),
        Err(detail) => Err(ModelError::Runtime { detail: detail.clone() }),
    }
}

fn load(data: &Path, opts: &RuntimeOptions) -> Result<ort::environment::Environment, String> {
    let (path, given_by) = match (&opts.library, std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty())) {
        (Some(p), _) => (p.clone(), Some("--ort-lib")),
        (None, Some(p)) => (PathBuf::from(p), Some("ORT_DYLIB_PATH")),
        (None, None) => {
            let p = models::default_path(data, Role::Runtime);
            models::verify_file(&p, Role::Runtime).map_err(|e| e.to_string())?;
            (p, None)
        }
    };
    if !path.is_file() {
        return Err(match given_by {
            Some(how) => format!("library {} (from {how}) does not exist", path.display()),
            None => format!("library {} does not exist; run `{}`", path.display(), models::INSTALL_HINT),
        });
    }
    let builder = ort::init_from(&path).map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    let threads = opts
        .intra_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    // One intra-op thread pool shared by every session. With a pool per session, the spinning
    // threads of one session steal the cores from the next session's run (detector, then
    // recogniser, alternately): measured 63 ms per detect + embed vs 27 ms with one shared pool
    // on the 2-core machine of BENCHMARKS.md.
    let pool = ort::environment::GlobalThreadPoolOptions::default()
        .with_intra_threads(threads)
        .and_then(|p| p.with_inter_threads(1))
        .and_then(|p| p.with_spin_control(true))
        .map_err(|e| format!("thread pool: {e}"))?;
    builder
        .with_global_thread_pool(pool)
        .with_name("faceprint")
        .build()
        .map_err(|e| format!("cannot create environment from {}: {e}", path.display()))
}

/// Creates a session for the model file at `path` (already verified by the caller).
///
/// # Errors
/// [`ModelError::Runtime`] when ONNX Runtime rejects the file (not ONNX, unsupported operators).
pub fn session(path: &Path, opts: &RuntimeOptions) -> Result<Session, ModelError> {
    let err = |e: ort::Error| ModelError::Runtime { detail: format!("{}: {e}", path.display()) };
    let env = match ENV.get() {
        Some(Ok(env)) => env,
        Some(Err(detail)) => return Err(ModelError::Runtime { detail: detail.clone() }),
        None => return Err(ModelError::Runtime { detail: "ONNX Runtime is not initialised (call runtime::init first)".into() }),
    };
    let builder = Session::builder(env).map_err(err)?;
    let builder = builder.with_optimization_level(GraphOptimizationLevel::All).map_err(|e| err(e.into()))?;
    let mut builder = if opts.sessions > 1 {
        // One thread per session, on the caller's thread: no pool threads at all.
        builder
            .with_independent_thread_pool()
            .and_then(|b| b.with_intra_threads(1))
            .and_then(|b| b.with_inter_threads(1))
            .map_err(|e| err(e.into()))?
    } else {
        // The environment's shared pool (see `load`).
        builder
    };
    builder.commit_from_file(path).map_err(err)
}

/// Several sessions of one model, so that several threads can run it at once (ONNX Runtime's
/// `run` needs exclusive access to a session). A caller takes a free session, or waits for one.
pub struct SessionPool {
    sessions: Vec<Mutex<Session>>,
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionPool({} sessions)", self.sessions.len())
    }
}

impl SessionPool {
    /// Creates `opts.sessions.max(1)` sessions of the model at `path`.
    ///
    /// # Errors
    /// As [`session`].
    pub fn new(path: &Path, opts: &RuntimeOptions) -> Result<Self, ModelError> {
        let n = opts.sessions.max(1);
        let sessions = (0..n).map(|_| session(path, opts).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        Ok(SessionPool { sessions, next: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Always false: a pool has at least one session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Session `i` (modulo [`Self::len`]), waiting until it is free: for work that must reach
    /// every session, such as a warm-up.
    pub fn session(&self, i: usize) -> std::sync::MutexGuard<'_, Session> {
        self.sessions[i % self.sessions.len()].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free session, or (all busy) the next one in turn once it is free.
    pub fn acquire(&self) -> std::sync::MutexGuard<'_, Session> {
        for s in &self.sessions {
            if let Ok(g) = s.try_lock() {
                return g;
            }
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.sessions.len();
        self.sessions[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}
