#!/usr/bin/env python3
"""Check that the written-down insightface pipeline spec reproduces the golden file.

A from-scratch re-implementation of what insightface 2.1 does (see
README.md, "What insightface does, exactly"), using only numpy, OpenCV and
a plain *dynamic-shape* ONNX Runtime session (as faceprint will use), with
no insightface import. It compares against tests/golden/insightface_buffalo_s.json
and prints the worst differences. It also measures how much two likely
Rust-side deviations would move the embeddings:
  * float bilinear warp instead of cv2.warpAffine's fixed-point one
  * float bilinear resize instead of cv2.resize's fixed-point INTER_LINEAR
The main path uses resize_cv_exact(), a bit-exact numpy emulation of
cv2.resize's 8-bit INTER_LINEAR, so the whole chain is cv2-free except
cv2.imread and cv2.warpAffine (the latter is shown to be replaceable by a
float bilinear warp).

    /work/venv-ref/bin/python tools/reference/spec_check.py [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcommon  # noqa: E402

ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


# ---------------------------------------------------------------- detection
def letterbox(img, size=640, resize=None):
    h, w = img.shape[:2]
    im_ratio = h / w
    if im_ratio > 1.0:                    # model ratio is 640/640 = 1
        nh = size
        nw = int(nh / im_ratio)           # truncation
    else:
        nw = size
        nh = int(nw * im_ratio)           # truncation
    det_scale = nh / h                    # ONE scale, from the heights
    rs = (resize or (lambda im, wh: cv2.resize(im, wh)))(img, (nw, nh))
    canvas = np.zeros((size, size, 3), np.uint8)   # pad right/bottom with 0
    canvas[:nh, :nw] = rs
    return canvas, det_scale


def detect(sess, img, thresh=0.5, nms_thresh=0.4, resize=None):
    canvas, det_scale = letterbox(img, resize=resize)
    x = canvas[:, :, ::-1].astype(np.float32)          # BGR -> RGB
    x = (x - 127.5) / 128.0
    blob = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    outs = sess.run(None, {sess.get_inputs()[0].name: blob})
    scores_l, boxes_l, kps_l = [], [], []
    for i, stride in enumerate((8, 16, 32)):
        sc = outs[i][0][:, 0]
        bb = outs[i + 3][0] * stride
        kp = outs[i + 6][0] * stride
        fh, fw = 640 // stride, 640 // stride
        yy, xx = np.mgrid[:fh, :fw]
        centers = np.stack([xx, yy], -1).reshape(-1, 2).astype(np.float32) * stride
        centers = np.repeat(centers, 2, axis=0)        # 2 anchors per cell, same centre
        keep = sc >= thresh
        c = centers[keep]
        b = bb[keep]
        k = kp[keep].reshape(-1, 5, 2)
        boxes_l.append(np.stack([c[:, 0] - b[:, 0], c[:, 1] - b[:, 1],
                                 c[:, 0] + b[:, 2], c[:, 1] + b[:, 3]], -1))
        kps_l.append(c[:, None, :] + k)
        scores_l.append(sc[keep])
    scores = np.concatenate(scores_l)
    boxes = np.concatenate(boxes_l) / det_scale
    kps = np.concatenate(kps_l) / det_scale
    order = np.argsort(-scores, kind="stable")
    scores, boxes, kps = scores[order], boxes[order], kps[order]
    # greedy NMS, "+1" pixel convention, suppress when IoU > 0.4
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    idx = np.arange(len(scores))
    keep = []
    while idx.size:
        i = idx[0]
        keep.append(i)
        r = idx[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[r]) - np.maximum(x1[i], x1[r]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[r]) - np.maximum(y1[i], y1[r]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[r] - inter)
        idx = r[iou <= nms_thresh]
    return boxes[keep], scores[keep], kps[keep]


# ---------------------------------------------------------------- alignment
def similarity_umeyama(src, dst):
    """Least-squares 2-D similarity (Umeyama, with scale, no reflection)."""
    src = src.astype(np.float64)
    dst = dst.astype(np.float64)
    n = src.shape[0]
    sm, dm = src.mean(0), dst.mean(0)
    sd, dd = src - sm, dst - dm
    A = dd.T @ sd / n
    d = np.ones(2)
    if np.linalg.det(A) < 0:
        d[1] = -1
    U, S, Vt = np.linalg.svd(A)
    R = U @ np.diag(d) @ Vt
    var = (sd ** 2).sum() / n
    scale = (S * d).sum() / var
    T = np.eye(3)
    T[:2, :2] = scale * R
    T[:2, 2] = dm - scale * (R @ sm)
    return T[:2]


def warp_float(img, M, size=112):
    """Plain float bilinear inverse warp, zero border (for sensitivity)."""
    Mi = cv2.invertAffineTransform(M)
    ys, xs = np.mgrid[:size, :size].astype(np.float64)
    sx = Mi[0, 0] * xs + Mi[0, 1] * ys + Mi[0, 2]
    sy = Mi[1, 0] * xs + Mi[1, 1] * ys + Mi[1, 2]
    x0 = np.floor(sx).astype(int)
    y0 = np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    h, w = img.shape[:2]
    out = np.zeros((size, size, 3), np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xx, yy = x0 + dx, y0 + dy
            ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            px = np.zeros((size, size, 3))
            px[ok] = img[yy[ok], xx[ok]]
            out += px * (wx * wy)[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_float(img, wh):
    """Float bilinear resize, half-pixel centres, no antialias."""
    nw, nh = wh
    h, w = img.shape[:2]
    sx, sy = w / nw, h / nh
    xs = np.clip((np.arange(nw) + 0.5) * sx - 0.5, 0, None)
    ys = np.clip((np.arange(nh) + 0.5) * sy - 0.5, 0, None)
    x0 = np.minimum(np.floor(xs).astype(int), w - 1)
    y0 = np.minimum(np.floor(ys).astype(int), h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (xs - x0)[None, :, None]
    fy = (ys - y0)[:, None, None]
    im = img.astype(np.float64)
    top = im[y0][:, x0] * (1 - fx) + im[y0][:, x1] * fx
    bot = im[y1][:, x0] * (1 - fx) + im[y1][:, x1] * fx
    return np.clip(np.rint(top * (1 - fy) + bot * fy), 0, 255).astype(np.uint8)


def _cv_coefs(dn, sn, clamp):
    """cv2.resize INTER_LINEAR source index + 11-bit weights for one axis."""
    scale = 1.0 / (dn / sn)                               # double
    f = ((np.arange(dn) + 0.5) * scale - 0.5).astype(np.float32)   # float32!
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:                        # x axis only: clamp index AND zero the fraction
        lo = s < 0
        f[lo] = 0
        s[lo] = 0
        hi = s >= sn - 1
        f[hi] = 0
        s[hi] = sn - 1
    a1 = np.rint(f * np.float32(2048)).astype(np.int64)          # cvRound
    a0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    s1 = np.clip(s + 1, 0, sn - 1)   # y axis: only the row index is clamped
    s0 = np.clip(s, 0, sn - 1)
    return s0, s1, a0, a1


def resize_cv_exact(img, wh):
    """Bit-exact emulation of cv2.resize(img, wh) (INTER_LINEAR, uint8 BGR)
    as run by opencv-python(-headless) on x86-64 (SIMD path).

    NB: OpenCV switches to INTER_AREA when both scales are exactly 2 (e.g.
    1280x886 -> 640x443); for that case this linear formula gives the same
    bytes ((a+b+c+d+2)>>2), checked on t1.jpg.
    """
    nw, nh = wh
    h, w = img.shape[:2]
    xs0, xs1, ax0, ax1 = _cv_coefs(nw, w, clamp=True)
    ys0, ys1, by0, by1 = _cv_coefs(nh, h, clamp=False)
    im = img.astype(np.int64)
    rows = im[:, xs0] * ax0[None, :, None] + im[:, xs1] * ax1[None, :, None]
    S0, S1 = rows[ys0], rows[ys1]
    b0, b1 = by0[:, None, None], by1[:, None, None]
    out = (((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)


def embed(sess, crop):
    x = crop[:, :, ::-1].astype(np.float32)             # BGR -> RGB
    x = (x - 127.5) / 127.5
    blob = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    e = sess.run(None, {sess.get_inputs()[0].name: blob})[0][0].astype(np.float64)
    return e / np.linalg.norm(e)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=refcommon.default_models_dir())
    ap.add_argument("--data", type=Path, default=refcommon.DEFAULT_DATA)
    ap.add_argument("--golden", type=Path,
                    default=refcommon.REPO_ROOT / "tests/golden/insightface_buffalo_s.json")
    args = ap.parse_args(argv)
    refcommon.verify_models(args.models)
    ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    det = ort.InferenceSession(str(args.models / refcommon.DET_FILE), so, providers=["CPUExecutionProvider"])
    rec = ort.InferenceSession(str(args.models / refcommon.REC_FILE), so, providers=["CPUExecutionProvider"])
    gold = json.load(open(args.golden))

    worst = {"resize_exact_mismatched_pixels": 0, "count_mismatch": 0, "bbox": 0.0, "score": 0.0, "kps": 0.0, "M": 0.0,
             "emb_cos_min": 1.0, "floatwarp_cos_min": 1.0, "floatresize_cos_min": 1.0,
             "floatresize_bbox": 0.0}
    for gi in gold["images"]:
        img = cv2.imread(str(args.data / gi["path"]))
        canvas_cv, _ = letterbox(img)
        canvas_ex, _ = letterbox(img, resize=resize_cv_exact)
        worst["resize_exact_mismatched_pixels"] += int((canvas_cv != canvas_ex).sum())
        boxes, scores, kps = detect(det, img, resize=resize_cv_exact)
        if len(scores) != len(gi["faces"]):
            worst["count_mismatch"] += 1
            print("count mismatch", gi["path"], len(scores), len(gi["faces"]))
            continue
        fb, fs, fk = detect(det, img, resize=resize_float)
        for j, gf in enumerate(gi["faces"]):
            worst["bbox"] = max(worst["bbox"], float(np.abs(boxes[j] - gf["bbox"]).max()))
            worst["score"] = max(worst["score"], abs(float(scores[j]) - gf["score"]))
            worst["kps"] = max(worst["kps"], float(np.abs(kps[j] - np.array(gf["landmarks"])).max()))
            M = similarity_umeyama(kps[j], ARCFACE_DST)
            worst["M"] = max(worst["M"], float(np.abs(M - np.array(gf["align_matrix"])).max()))
            crop = cv2.warpAffine(img, M, (112, 112), borderValue=0.0)
            e = embed(rec, crop)
            g = np.array(gf["embedding"])
            worst["emb_cos_min"] = min(worst["emb_cos_min"], float(e @ g))
            e2 = embed(rec, warp_float(img, M))
            worst["floatwarp_cos_min"] = min(worst["floatwarp_cos_min"], float(e2 @ g))
            if len(fs) == len(gi["faces"]):
                worst["floatresize_bbox"] = max(worst["floatresize_bbox"], float(np.abs(fb[j] - gf["bbox"]).max()))
                M3 = similarity_umeyama(fk[j], ARCFACE_DST)
                e3 = embed(rec, cv2.warpAffine(img, M3, (112, 112), borderValue=0.0))
                worst["floatresize_cos_min"] = min(worst["floatresize_cos_min"], float(e3 @ g))
            else:
                print("float-resize count differs", gi["path"], len(fs), len(gi["faces"]))
    print(json.dumps(worst, indent=1))
    return 0 if worst["count_mismatch"] == 0 and worst["emb_cos_min"] > 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
