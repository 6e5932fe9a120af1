#!/usr/bin/env python3
"""LFW verification (pairs.txt, 10-fold) with insightface: the reference for faceprint.

faceprint's own LFW evaluation uses exactly the same protocol; this script
is the insightface 2.1 side of the comparison. Same FaceAnalysis as
make_golden.py (pack buffalo_s built from scrfd_500m_bnkps.onnx +
w600k_mbf.onnx, CPU, det_size 640x640, det_thresh 0.5).

    /work/venv-ref/bin/python tools/reference/eval_lfw_insightface.py \
        [--lfw DIR] [--models DIR] [--threads N] [--out FILE]

Defaults: --lfw <repo>/../shared/data/lfw, --out
tools/reference/results/lfw_insightface.json. Progress goes to stderr every
500 images. Takes ~5-10 min of CPU for the 7,701 distinct images.
--rescore JSON skips the embedding pass and recomputes every metric from
the "similarities" stored in JSON (a quick way to re-check the metric code,
or to score another tool's similarity list written in the same format).

PROTOCOL
========
Data. <lfw>/pairs.txt: first line "10<TAB>300"; then 10 blocks of 600
lines; block k = fold k = 300 same-person lines `name i j` followed by 300
different-person lines `name1 i name2 j`. Image path:
<lfw>/lfw_funneled/NAME/NAME_%04d.jpg (250x250). Pair order everywhere
(and in the JSON "similarities" list) is file order, 6000 pairs.

Embedding. Each DISTINCT image (sorted by relative path) is processed once:
img = cv2.imread(path) (BGR uint8); faces = app.get(img) (detection +
alignment + recognition of every detected face). Face choice: the face
whose box centre ((x1+x2)/2, (y1+y2)/2) is nearest the image centre
(W/2, H/2) = (125.0, 125.0) for LFW, by Euclidean distance in pixels
(float64); ties in distance -> higher detection score (a further tie ->
the earlier face in insightface's order). Its normed_embedding is used.
An image with no detected face has no embedding.

Similarity. sim = dot(a, b) of the two normed embeddings (float64), or
exactly -1.0 if either image has no face (such a pair is therefore always
'different': an error when it is a same-person pair). No pair is dropped.
Then every similarity is ROUNDED TO 6 DECIMALS (Python round(x, 6)) and
ALL metrics below are computed from those rounded values, which are the
ones written to the JSON "similarities" list. So feeding that list (+ the
labels/folds from pairs.txt) to another implementation of the metrics must
reproduce every number in this file exactly. (The unrounded values give the
same metrics up to ~1e-6; a check is stored under "full_precision_check".)

Decision. 'same' iff sim >= threshold.
  TAR(t) = #{genuine sim >= t} / #genuine      (genuine  = same-person pairs)
  FAR(t) = #{impostor sim >= t} / #impostor    (impostor = different-person)
  FRR(t) = 1 - TAR(t)

Fold threshold (10-fold cross-validation). For test fold k, the TRAINING
set is the 5400 pairs of the other 9 folds.
  1. Candidates c_1 < c_2 < ... < c_m: the sorted DISTINCT similarity
     values of the training pairs (only these; no extra +inf candidate).
  2. For each c_i, correct(c_i) = #{genuine train sim >= c_i}
     + #{impostor train sim < c_i}, an INTEGER count (compare counts, not
     float accuracies). M = max_i correct(c_i).
  3. The maximising set {i : correct(c_i) == M} may be one or several runs
     of consecutive candidates. Take lo = its smallest index, hi = its
     largest index: t_lo = c_lo, t_hi = c_hi.
  4. t_lo_prev = c_{lo-1} (the largest training similarity value strictly
     below t_lo) if lo > 1, else t_lo - 1e-3.
  5. threshold_k = (t_lo_prev + t_hi) / 2   (float64).
     (Any t in (c_{i-1}, c_i] makes the same decisions as c_i, so
     (t_lo_prev, t_hi] is the whole interval spanned by the maximising
     thresholds and threshold_k is its midpoint.)
  6. fold_accuracy[k] = #{test pairs of fold k classified correctly at
     threshold_k} / 600.
accuracy_mean = mean(fold_accuracy), accuracy_std = population std
(numpy ddof=0) of fold_accuracy.

The remaining metrics use ALL 6000 pairs (3000 genuine, 3000 impostor):

AUC (Mann-Whitney, ties count 1/2):
  auc = ( #{(g, i): g > i} + 0.5 * #{(g, i): g == i} ) / (3000 * 3000)
  over all genuine sims g and impostor sims i.

EER. Thresholds t_1 < ... < t_n = sorted distinct values of all 6000 sims;
ROC point j = (FAR(t_j), FRR(t_j)); d_j = FAR(t_j) - FRR(t_j) is
non-increasing in j (d_1 = 1 > 0 since FAR(t_1) = 1, FRR(t_1) = 0).
Let b = the first j with d_j <= 0 (sign decided exactly on integer counts:
#impostor>=t * #genuine - #genuine<t * #impostor; FAR = count/#impostor and
FRR = count/#genuine as float64 divisions; alpha uses the integer d's).
  - if d_b == 0: eer = FAR(t_b), eer_threshold = t_b;
  - else with a = b - 1 (d_a > 0 > d_b): alpha = d_a / (d_a - d_b),
    eer = FAR(t_a) + alpha * (FAR(t_b) - FAR(t_a))
        (= FRR(t_a) + alpha * (FRR(t_b) - FRR(t_a)), same value),
    eer_threshold = t_a + alpha * (t_b - t_a)
    (linear interpolation between the two ROC points where FAR - FRR
    changes sign).
  - if no j has d_j <= 0 (cannot happen unless FAR(t_n) > FRR(t_n)), the
    extra point t_{n+1} = t_n + 1e-3 with FAR = 0, FRR = 1 is used as b.

TAR@FAR for target in {1e-2, 1e-3}: candidates = the sorted distinct values
of all 6000 sims (the same t_j as for EER); threshold = the smallest t_j
with FAR(t_j) <= target (FAR on all 3000 impostor pairs; if none, t_n +
1e-3); tar = TAR(threshold) on all 3000 genuine pairs. Also reported: the
FAR actually reached at that threshold. (Using all sims, not only impostor
sims, as candidates gives the highest TAR attainable with FAR <= target.)

Timing. "seconds" = wall time of the embedding pass only (imread + app.get
+ face choice for all distinct images, models already loaded; the first
image is not run twice / no warm-up); images_per_sec = images / seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon  # noqa: E402

import numpy as np  # noqa: E402

SIM_DECIMALS = 6
NO_FACE_SIM = -1.0
TARGET_FARS = (("1e-2", 1e-2), ("1e-3", 1e-3))


# --------------------------------------------------------------------- data
def read_pairs(path: Path):
    """-> (n_folds, per_fold, pairs) with pairs = [(relA, relB, is_same, fold)]."""
    with open(path) as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    head = lines[0].split()
    n_folds, per = int(head[0]), int(head[1])
    body = lines[1:]
    if len(body) != n_folds * 2 * per:
        raise SystemExit(f"{path}: expected {n_folds * 2 * per} pair lines, got {len(body)}")

    def rel(name, i):
        return f"{name}/{name}_{int(i):04d}.jpg"

    pairs = []
    for idx, ln in enumerate(body):
        fold, pos = divmod(idx, 2 * per)
        parts = ln.split()
        if pos < per:
            if len(parts) != 3:
                raise SystemExit(f"{path}:{idx + 2}: same-person line expected: {ln!r}")
            name, i, j = parts
            pairs.append((rel(name, i), rel(name, j), True, fold))
        else:
            if len(parts) != 4:
                raise SystemExit(f"{path}:{idx + 2}: different-person line expected: {ln!r}")
            n1, i, n2, j = parts
            pairs.append((rel(n1, i), rel(n2, j), False, fold))
    return n_folds, per, pairs


def choose_face(faces, width, height):
    """Face whose box centre is nearest the image centre; ties -> higher score."""
    if not faces:
        return None
    cx, cy = width / 2.0, height / 2.0
    best, best_key = None, None
    for f in faces:
        x1, y1, x2, y2 = (float(v) for v in f.bbox[:4])
        d = math.hypot((x1 + x2) / 2.0 - cx, (y1 + y2) / 2.0 - cy)
        key = (d, -float(f.det_score))
        if best_key is None or key < best_key:  # strict: earlier face wins full ties
            best, best_key = f, key
    return best


# ------------------------------------------------------------------ metrics
def fold_threshold(sims: np.ndarray, same: np.ndarray) -> float:
    """Midpoint rule of the module docstring (steps 1-5)."""
    cand = np.unique(sims)  # sorted distinct
    gen = np.sort(sims[same])
    imp = np.sort(sims[~same])
    # genuine >= c  = len(gen) - #(gen < c);  impostor < c = #(imp < c)
    gen_ge = len(gen) - np.searchsorted(gen, cand, side="left")
    imp_lt = np.searchsorted(imp, cand, side="left")
    correct = gen_ge + imp_lt  # int64
    best = correct.max()
    idx = np.flatnonzero(correct == best)
    lo, hi = int(idx[0]), int(idx[-1])
    t_lo, t_hi = float(cand[lo]), float(cand[hi])
    t_lo_prev = float(cand[lo - 1]) if lo > 0 else t_lo - 1e-3
    return (t_lo_prev + t_hi) / 2.0


def accuracy_at(sims, same, t) -> float:
    pred = sims >= t
    return float(np.count_nonzero(pred == same)) / len(sims)


def rates(sims, same, thresholds):
    gen = np.sort(sims[same])
    imp = np.sort(sims[~same])
    tar = (len(gen) - np.searchsorted(gen, thresholds, side="left")) / len(gen)
    far = (len(imp) - np.searchsorted(imp, thresholds, side="left")) / len(imp)
    return tar, far


def auc_mann_whitney(sims, same) -> float:
    gen = sims[same]
    imp = np.sort(sims[~same])
    less = np.searchsorted(imp, gen, side="left")
    le = np.searchsorted(imp, gen, side="right")
    # 2*(#greater) + #equal, all integers, then / (2*G*I)
    twice = int(np.sum(2 * less + (le - less)))
    return twice / (2.0 * len(gen) * len(imp))


def eer(sims, same):
    """EER rule of the module docstring; the sign test uses exact integers."""
    t = np.unique(sims)
    gen = np.sort(sims[same])
    imp = np.sort(sims[~same])
    G, I = len(gen), len(imp)
    gen_lt = np.searchsorted(gen, t, side="left")  # genuine rejected (FRR * G)
    imp_ge = I - np.searchsorted(imp, t, side="left")  # impostor accepted (FAR * I)
    # d = FAR - FRR, scaled by G*I so it is an exact integer
    d = [int(v) for v in imp_ge * G - gen_lt * I]
    t = [float(v) for v in t]
    far = [int(v) / I for v in imp_ge]
    frr = [int(v) / G for v in gen_lt]
    b = next((j for j, v in enumerate(d) if v <= 0), None)
    if b is None:
        t.append(t[-1] + 1e-3)
        far.append(0.0)
        frr.append(1.0)
        d.append(-G * I)
        b = len(t) - 1
    if d[b] == 0:
        return far[b], t[b]
    a = b - 1
    alpha = d[a] / (d[a] - d[b])
    e = far[a] + alpha * (far[b] - far[a])
    th = t[a] + alpha * (t[b] - t[a])
    return e, th


def tar_at_far(sims, same, target):
    t = np.unique(sims)
    tar, far = rates(sims, same, t)
    ok = np.flatnonzero(far <= target)
    if len(ok) == 0:
        th = float(t[-1]) + 1e-3
    else:
        th = float(t[ok[0]])
    tar1, far1 = rates(sims, same, np.array([th]))
    return {"tar": float(tar1[0]), "threshold": th, "far": float(far1[0])}


def compute_metrics(sims: np.ndarray, same: np.ndarray, folds: np.ndarray, n_folds: int):
    fold_acc, fold_thr, fold_train_acc = [], [], []
    for k in range(n_folds):
        train = folds != k
        test = folds == k
        th = fold_threshold(sims[train], same[train])
        fold_thr.append(th)
        fold_train_acc.append(accuracy_at(sims[train], same[train], th))
        fold_acc.append(accuracy_at(sims[test], same[test], th))
    fa = np.array(fold_acc)
    e, e_th = eer(sims, same)
    return {
        "fold_accuracy": fold_acc,
        "fold_threshold": fold_thr,
        "fold_train_accuracy": fold_train_acc,
        "accuracy_mean": float(fa.mean()),
        "accuracy_std": float(fa.std()),  # ddof=0
        "auc": auc_mann_whitney(sims, same),
        "eer": e,
        "eer_threshold": e_th,
        "tar_at_far": {name: tar_at_far(sims, same, v) for name, v in TARGET_FARS},
    }


# --------------------------------------------------------------------- main
def rescore(args, n_folds, pairs) -> int:
    with open(args.rescore) as f:
        doc = json.load(f)
    sims = np.array(doc["similarities"], dtype=np.float64)
    if len(sims) != len(pairs):
        raise SystemExit(f"{args.rescore}: {len(sims)} similarities for {len(pairs)} pairs")
    same = np.array([p[2] for p in pairs], dtype=bool)
    folds = np.array([p[3] for p in pairs], dtype=np.int64)
    m = compute_metrics(sims, same, folds, n_folds)
    changed = [k for k in m if doc.get(k) != m[k]]
    for k in changed:
        print(f"changed {k}: {doc.get(k)!r} -> {m[k]!r}", file=sys.stderr)
    if not changed:
        print("all metrics identical", file=sys.stderr)
    doc.update(m)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=refcommon.DEFAULT_DATA / "lfw")
    ap.add_argument("--models", type=Path, default=refcommon.default_models_dir())
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0=default)")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "lfw_insightface.json",
    )
    ap.add_argument(
        "--rescore",
        type=Path,
        metavar="JSON",
        help="no embedding pass: recompute the metrics from the 'similarities' of an "
        "existing output file (plus labels/folds from pairs.txt), print what changed "
        "and write the updated document to --out",
    )
    args = ap.parse_args(argv)

    pairs_path = args.lfw / "pairs.txt"
    img_root = args.lfw / "lfw_funneled"
    n_folds, per, pairs = read_pairs(pairs_path)
    if args.rescore:
        return rescore(args, n_folds, pairs)
    sums = refcommon.verify_models(args.models)

    import cv2
    import insightface
    import onnxruntime as ort

    app, tmp = refcommon.build_app(args.models, threads=args.threads, det_size=(640, 640))

    images = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    emb = {}
    n_faces_hist = {}
    no_face = []
    print(f"{len(pairs)} pairs, {len(images)} distinct images", file=sys.stderr)
    t0 = time.perf_counter()
    for n, rel in enumerate(images, 1):
        img = cv2.imread(str(img_root / rel))
        if img is None:
            raise SystemExit(f"cannot read {img_root / rel}")
        faces = app.get(img)
        n_faces_hist[len(faces)] = n_faces_hist.get(len(faces), 0) + 1
        f = choose_face(faces, img.shape[1], img.shape[0])
        if f is None:
            no_face.append(rel)
        else:
            emb[rel] = np.asarray(f.normed_embedding, dtype=np.float64)
        if n % 500 == 0 or n == len(images):
            el = time.perf_counter() - t0
            print(
                f"[{n}/{len(images)}] {el:.1f}s {n / el:.1f} img/s no_face={len(no_face)}",
                file=sys.stderr,
                flush=True,
            )
    seconds = time.perf_counter() - t0
    tmp.cleanup()

    raw = np.empty(len(pairs), dtype=np.float64)
    same = np.array([p[2] for p in pairs], dtype=bool)
    folds = np.array([p[3] for p in pairs], dtype=np.int64)
    pairs_nf = {"total": 0, "same": 0, "different": 0}
    for i, (a, b, s, _) in enumerate(pairs):
        if a in emb and b in emb:
            raw[i] = float(np.dot(emb[a], emb[b]))
        else:
            raw[i] = NO_FACE_SIM
            pairs_nf["total"] += 1
            pairs_nf["same" if s else "different"] += 1
    sims_list = [round(float(x), SIM_DECIMALS) for x in raw]
    sims = np.array(sims_list, dtype=np.float64)

    m = compute_metrics(sims, same, folds, n_folds)
    m_full = compute_metrics(raw, same, folds, n_folds)

    doc = {
        "tool": "insightface",
        "generator": "tools/reference/eval_lfw_insightface.py",
        "versions": {
            "insightface": insightface.__version__,
            "onnxruntime": ort.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "pack": "buffalo_s (temp pack: det_500m.onnx=scrfd_500m_bnkps.onnx, w600k_mbf.onnx)",
        "model_sha256": sums,
        "providers": ["CPUExecutionProvider"],
        "ort_intra_op_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "det_size": [640, 640],
        "det_thresh": float(app.det_thresh),
        "face_choice": "box centre nearest image centre (W/2,H/2), Euclidean px; tie -> higher det score",
        "no_face_similarity": NO_FACE_SIM,
        "similarity_decimals": SIM_DECIMALS,
        "metrics_computed_on": "the rounded similarities listed in 'similarities'",
        "pairs_file": str(pairs_path),
        "folds": n_folds,
        "pairs_per_fold_per_class": per,
        "images": len(images),
        "images_no_face": len(no_face),
        "no_face_image_list": no_face,
        "faces_per_image_histogram": {str(k): v for k, v in sorted(n_faces_hist.items())},
        "pairs": len(pairs),
        "pairs_with_no_face": pairs_nf["total"],
        "pairs_with_no_face_by_class": {"same": pairs_nf["same"], "different": pairs_nf["different"]},
        **m,
        "full_precision_check": {
            k: m_full[k] for k in ("accuracy_mean", "accuracy_std", "auc", "eer", "fold_accuracy")
        },
        "full_precision_identical_fold_accuracy": m_full["fold_accuracy"] == m["fold_accuracy"],
        "seconds": seconds,
        "images_per_sec": len(images) / seconds,
        "similarities": sims_list,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(
        f"accuracy {m['accuracy_mean'] * 100:.3f}% +- {m['accuracy_std'] * 100:.3f}  "
        f"AUC {m['auc']:.6f}  EER {m['eer'] * 100:.3f}%  "
        f"TAR@FAR1e-3 {m['tar_at_far']['1e-3']['tar'] * 100:.2f}%  "
        f"no-face images {len(no_face)} pairs {pairs_nf['total']}  {seconds:.1f}s",
        file=sys.stderr,
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
