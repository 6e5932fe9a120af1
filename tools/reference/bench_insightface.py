#!/usr/bin/env python3
"""Python speed baseline: insightface 2.1 end to end, for comparison with faceprint.

Mode 1 (default), end to end: the same FaceAnalysis as make_golden.py
(buffalo_s pack built from scrfd_500m_bnkps.onnx + w600k_mbf.onnx, CPU,
det_size 640x640, det_thresh 0.5). Per image: cv2.imread + app.get(img)
(= detect + align + embed every face, one recognizer run per face, as
insightface does). The first image is run once as warm-up, not timed; then
every image (the first included) is timed once per --repeat.

    /work/venv-ref/bin/python tools/reference/bench_insightface.py [--threads N] [--repeat R] [IMAGES_OR_DIRS...]

With no image arguments it uses make_golden.py's IMAGES list (relative to
--data, default <repo>/../shared/data).

Mode 2, raw recognizer: onnxruntime session.run of w600k_mbf on a random
float32 batch (default 32 x 3 x 112 x 112), --runs times after 3 warm-up
runs; reports median ms per batch and per face.

    /work/venv-ref/bin/python tools/reference/bench_insightface.py --raw-recognizer --batch 32 --runs 20 [--threads N]

--threads N sets SessionOptions.intra_op_num_threads for every session
(FaceAnalysis forwards sess_options to each model; insightface 2.1's
static-shape SCRFD session copies the main session's options).
N = 0 (default) is ONNX Runtime's default: one intra-op thread per
physical core. inter_op threads stay at ORT's default (sequential
execution). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon  # noqa: E402

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def collect(args):
    if not args.inputs:
        from make_golden import IMAGES

        return [args.data / p for p in IMAGES]
    files = []
    for a in args.inputs:
        p = Path(a)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in EXTS)
        else:
            files.append(p)
    return files


def thread_info(threads):
    return {
        "intra_op_num_threads_requested": threads,
        "intra_op_num_threads_effective": threads if threads > 0 else "ORT default (= physical cores)",
        "os_cpu_count": os.cpu_count(),
    }


def end_to_end(args):
    import cv2

    files = collect(args)
    if not files:
        raise SystemExit("no images")
    app, tmp = refcommon.build_app(args.models, threads=args.threads)
    # warm-up on the first image, not counted
    img = cv2.imread(str(files[0]))
    app.get(img)
    n_img = n_faces = 0
    per_image = []
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        for f in files:
            ts = time.perf_counter()
            img = cv2.imread(str(f))
            if img is None:
                print(f"warning: cannot read {f}", file=sys.stderr)
                continue
            faces = app.get(img)
            per_image.append((str(f), len(faces), time.perf_counter() - ts))
            n_img += 1
            n_faces += len(faces)
    secs = time.perf_counter() - t0
    tmp.cleanup()
    out = {
        "mode": "end_to_end",
        "insightface": __import__("insightface").__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "det_size": [640, 640],
        "images": n_img,
        "faces": n_faces,
        "seconds": round(secs, 4),
        "images_per_sec": round(n_img / secs, 3),
        "faces_per_sec": round(n_faces / secs, 3),
        "onnxruntime_threads": thread_info(args.threads),
        "repeat": args.repeat,
    }
    if args.per_image:
        out["per_image"] = [
            {"path": p, "faces": n, "ms": round(s * 1000, 2)} for p, n, s in per_image
        ]
    return out


def raw_recognizer(args):
    import numpy as np
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # the model declares output [1,512]; batches >1 warn
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(
        str(args.models / refcommon.REC_FILE), so, providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, 3, 112, 112)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        y = sess.run(None, {name: x})[0]
        times.append((time.perf_counter() - t) * 1000)
    assert y.shape == (args.batch, 512), y.shape
    med = statistics.median(times)
    return {
        "mode": "raw_recognizer",
        "model": refcommon.REC_FILE,
        "onnxruntime": ort.__version__,
        "batch": args.batch,
        "runs": args.runs,
        "ms_per_batch_median": round(med, 3),
        "ms_per_face_median": round(med / args.batch, 4),
        "ms_per_batch_min": round(min(times), 3),
        "faces_per_sec": round(args.batch * 1000 / med, 1),
        "onnxruntime_threads": thread_info(args.threads),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="insightface speed baseline")
    ap.add_argument("inputs", nargs="*", help="image files or directories")
    ap.add_argument("--models", type=Path, default=refcommon.default_models_dir())
    ap.add_argument("--data", type=Path, default=refcommon.DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads; 0 = ORT default")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the image list (end to end)")
    ap.add_argument("--per-image", action="store_true", help="include per-image timings")
    ap.add_argument("--raw-recognizer", action="store_true", help="time w600k_mbf session.run only")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args(argv)
    refcommon.verify_models(args.models)
    res = raw_recognizer(args) if args.raw_recognizer else end_to_end(args)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
