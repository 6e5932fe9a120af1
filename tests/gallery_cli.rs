//! The gallery commands as a user runs them: `gallery init`, `index` (resumable, broken files,
//! multi-face policy), `enroll`, `identify --json`, `gallery list|show|rename|merge|remove|check|
//! reembed`, and the model-id check.

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
    let d = std::env::temp_dir().join(format!("faceprint-gcli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))).collect()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn enroll_index_identify_on_real_photos() {
    let Some(data) = common::shared_data("enroll_index_identify_on_real_photos") else { return };
    let ds = data.join("deepface/tests/unit/dataset");
    let t = tmpdir("real");
    let (src, gal) = (t.join("photos"), t.join("gallery"));
    // One sub-folder per person (symbolic links to the shared photos), a broken file and a
    // group photo.
    for (person, files) in [("G01", &["img5.jpg", "img6.jpg"][..]), ("G02", &["img12.jpg"][..]), ("G04", &["img14.jpg", "img15.jpg"][..])] {
        std::fs::create_dir_all(src.join(person)).unwrap();
        for f in files {
            std::os::unix::fs::symlink(ds.join(f), src.join(person).join(f)).unwrap();
        }
    }
    std::fs::create_dir_all(src.join("Broken")).unwrap();
    std::fs::write(src.join("Broken/broken.jpg"), b"not a JPEG at all").unwrap();
    std::fs::create_dir_all(src.join("Group")).unwrap();
    std::os::unix::fs::symlink(common::sample("t1.jpg"), src.join("Group/t1.jpg")).unwrap();

    let o = faceprint(&["gallery", "init", "--store-crops", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    let o = faceprint(&["gallery", "init", "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(2), "a second init is refused: {}", err(&o));

    // Bulk enrollment: 5 faces enrolled; the broken file and the group photo are reported.
    let o = faceprint(&["index", s(&src), "--json", "--no-cache", "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    let summary = json_lines(&o).pop().unwrap();
    assert_eq!(summary["enrolled"], 5, "{summary}");
    assert_eq!(summary["failed"], 2, "{summary}");
    let e = err(&o);
    assert!(e.contains("broken.jpg") && e.contains("t1.jpg") && e.contains("faces found"), "{e}");
    // Resumable: unchanged files are skipped by content hash.
    let o = faceprint(&["index", s(&src), "--json", "--no-cache", "--gallery", s(&gal)]);
    let summary = json_lines(&o).pop().unwrap();
    assert_eq!(summary["enrolled"], 0, "{summary}");
    assert_eq!(summary["skipped_unchanged"], 5, "{summary}");

    // Identification: other photos of the enrolled people.
    let probes = [("img11.jpg", "G01"), ("img53.jpg", "G02"), ("img57.jpg", "G04")];
    let paths: Vec<PathBuf> = probes.iter().map(|(f, _)| ds.join(f)).collect();
    let mut args = vec!["identify", "--json", "--top", "3", "--gallery", s(&gal)];
    args.extend(paths.iter().map(|p| s(p)));
    let o = faceprint(&args);
    assert!(o.status.success(), "{}", err(&o));
    let rows = json_lines(&o);
    assert_eq!(rows.len(), 3);
    for (r, (_, who)) in rows.iter().zip(&probes) {
        assert_eq!(r["decision"], "match", "{r}");
        assert_eq!(r["matches"][0]["identity"], *who, "{r}");
        assert_eq!(r["bbox"].as_array().unwrap().len(), 4);
        let m = r["matches"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert!(m[0]["similarity"].as_f64().unwrap() >= r["threshold"].as_f64().unwrap());
        assert!(m[1]["similarity"].as_f64().unwrap() <= m[0]["similarity"].as_f64().unwrap());
    }
    // A stranger at a strict threshold is unknown.
    let o = faceprint(&["identify", "--json", "--threshold", "0.5", "--gallery", s(&gal), s(&common::sample("yaoming.jpg"))]);
    assert_eq!(json_lines(&o)[0]["decision"], "unknown", "{}", String::from_utf8_lossy(&o.stdout));

    // Enroll: several faces are refused unless told which.
    let t1 = common::sample("t1.jpg");
    let o = faceprint(&["enroll", "Someone", s(&t1), "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("faces found"), "{}", err(&o));
    let o = faceprint(&["enroll", "Someone", s(&t1), "--largest", "--json", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(json_lines(&o)[0]["face"], 0);

    // Management commands.
    let o = faceprint(&["gallery", "list", "--json", "--gallery", s(&gal)]);
    let names: Vec<String> = json_lines(&o).iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, vec!["G01", "G02", "G04", "Someone"]);
    let o = faceprint(&["gallery", "show", "G01", "--json", "--gallery", s(&gal)]);
    let show = &json_lines(&o)[0];
    assert_eq!(show["faces"], 2);
    assert!(show["face_list"].as_array().unwrap().iter().all(|f| f["has_crop"] == true));
    assert!(faceprint(&["gallery", "rename", "Someone", "Other", "--gallery", s(&gal)]).status.success());
    let o = faceprint(&["gallery", "merge", "Other", "G02", "--json", "--gallery", s(&gal)]);
    assert_eq!(json_lines(&o)[0]["faces"], 2, "{}", err(&o));
    let o = faceprint(&["gallery", "remove", "G04", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    let o = faceprint(&["gallery", "show", "G04", "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    // G04 is never returned again.
    let o = faceprint(&["identify", "--json", "--gallery", s(&gal), s(&ds.join("img57.jpg"))]);
    let r = &json_lines(&o)[0];
    assert!(r["matches"].as_array().unwrap().iter().all(|m| m["identity"] != "G04"), "{r}");
    let o = faceprint(&["gallery", "check", "--json", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(json_lines(&o)[0]["ok"], true);

    // Re-embedding from the stored crops keeps every label.
    let gal2 = t.join("gallery2");
    let o = faceprint(&["gallery", "reembed", "--out", s(&gal2), "--json", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    let o = faceprint(&["gallery", "list", "--json", "--gallery", s(&gal2)]);
    let names: Vec<String> = json_lines(&o).iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, vec!["G01", "G02"]);
    let o = faceprint(&["identify", "--json", "--gallery", s(&gal2), s(&ds.join("img11.jpg"))]);
    assert_eq!(json_lines(&o)[0]["matches"][0]["identity"], "G01");
    // Without stored crops, reembed says so.
    let gal3 = t.join("gallery3");
    assert!(faceprint(&["gallery", "init", "--gallery", s(&gal3)]).status.success());
    assert!(faceprint(&["enroll", "A", s(&ds.join("img5.jpg")), "--gallery", s(&gal3)]).status.success());
    let o = faceprint(&["gallery", "reembed", "--out", s(&t.join("gallery4")), "--gallery", s(&gal3)]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("stores no face crops"), "{}", err(&o));
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn another_models_gallery_is_refused() {
    let t = tmpdir("model");
    let gal = t.join("gallery");
    // A gallery of synthetic embeddings (another model id).
    let o = faceprint(&["gallery", "stress-enroll", "--count", "2", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    let y = common::sample("yaoming.jpg");
    for args in [vec!["identify", "--no-cache", s(&y)], vec!["enroll", "Yao", s(&y)]] {
        let mut a = args.clone();
        a.extend(["--gallery", s(&gal)]);
        let o = faceprint(&a);
        assert_eq!(o.status.code(), Some(2), "{}", err(&o));
        let e = err(&o);
        assert!(e.contains("synthetic-stress") && e.contains("w600k_mbf"), "{e}");
    }
    // No gallery at all: the message says how to make one.
    let o = faceprint(&["gallery", "list", "--gallery", s(&t.join("none"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("gallery init"), "{}", err(&o));
    let _ = std::fs::remove_dir_all(&t);
}

fn identity_names(gal: &Path) -> Vec<String> {
    let o = faceprint(&["gallery", "list", "--json", "--gallery", s(gal)]);
    assert!(o.status.success(), "{}", err(&o));
    json_lines(&o).iter().map(|v| v["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn enrollment_refuses_a_dog_and_leaves_no_empty_identity() {
    let Some(data) = common::shared_data("enrollment_refuses_a_dog_and_leaves_no_empty_identity") else { return };
    let dog = data.join("dlib/examples/faces/dogs.jpg");
    let t = tmpdir("dog");
    let gal = t.join("gallery");
    assert!(faceprint(&["gallery", "init", "--gallery", s(&gal)]).status.success());
    // The detector takes the dog for a face (score 0.643): the enrollment gate refuses it.
    let o = faceprint(&["enroll", "Rex", s(&dog), "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("score 0.643 is below the minimum 0.680"), "{}", err(&o));
    // A broken file and a photo without a face: refused too. No identity is left behind.
    let broken = t.join("broken.jpg");
    std::fs::write(&broken, b"not an image").unwrap();
    let noface = data.join("insightface_pypi/insightface/data/images/mask_white.jpg");
    let o = faceprint(&["enroll", "Nobody", s(&broken), s(&noface), "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("was not created"), "{}", err(&o));
    assert!(identity_names(&gal).is_empty(), "{:?}", identity_names(&gal));
    // Lowering the gate enrolls it: the gate is what refused it.
    let o = faceprint(&["enroll", "Rex", s(&dog), "--min-enroll-score", "0.6", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    // Probes keep the detector's threshold and are flagged.
    let o = faceprint(&["identify", "--json", "--no-cache", s(&dog), "--gallery", s(&gal)]);
    let r = &json_lines(&o)[0];
    assert_eq!(r["weak_detection"], true, "{r}");
    let o = faceprint(&["identify", "--json", "--no-cache", s(&common::sample("yaoming.jpg")), "--gallery", s(&gal)]);
    assert_eq!(json_lines(&o)[0]["weak_detection"], false);
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn the_same_photo_is_enrolled_once() {
    let t = tmpdir("dup");
    let gal = t.join("gallery");
    let y = common::sample("yaoming.jpg");
    assert!(faceprint(&["gallery", "init", "--gallery", s(&gal)]).status.success());
    let o = faceprint(&["enroll", "Yao", s(&y), s(&y), "--json", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    let rows = json_lines(&o);
    assert_eq!((rows[0]["already_enrolled"].as_bool(), rows[1]["already_enrolled"].as_bool()), (Some(false), Some(true)));
    assert_eq!(rows[0]["face_id"], rows[1]["face_id"]);
    // Again later: a no-op that says so.
    let o = faceprint(&["enroll", "Yao", s(&y), "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already enrolled"), "{}", String::from_utf8_lossy(&o.stdout));
    // Another identity: an error naming the identity that has it; the new identity is not created.
    let o = faceprint(&["enroll", "Someone", s(&y), "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("already enrolled as face") && err(&o).contains("\"Yao\""), "{}", err(&o));
    assert_eq!(identity_names(&gal), vec!["Yao"]);
    let o = faceprint(&["gallery", "show", "Yao", "--json", "--gallery", s(&gal)]);
    assert_eq!(json_lines(&o)[0]["faces"], 1);
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn index_labels_csv_reports_bad_rows_and_enrolls_the_rest() {
    let t = tmpdir("csv");
    let (src, gal) = (t.join("photos"), t.join("gallery"));
    std::fs::create_dir_all(src.join("x")).unwrap();
    std::os::unix::fs::symlink(common::sample("yaoming.jpg"), src.join("x/yao.jpg")).unwrap();
    std::os::unix::fs::symlink(common::sample("t1.jpg"), src.join("x/t1.jpg")).unwrap();
    std::os::unix::fs::symlink(common::sample("yaoming.jpg"), t.join("outside.jpg")).unwrap();
    let csv = t.join("labels.csv");
    std::fs::write(&csv, "file,label\nx/yao.jpg,Yao\nx/t1.jpg,\n../outside.jpg,Yao\n").unwrap();
    assert!(faceprint(&["gallery", "init", "--gallery", s(&gal)]).status.success());
    let o = faceprint(&["index", s(&src), "--labels", s(&csv), "--json", "--no-cache", "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    let summary = json_lines(&o).pop().unwrap();
    assert_eq!(summary["enrolled"], 1, "{summary}");
    // Three rows: one enrolled, two bad ones counted as files and failures.
    assert_eq!((summary["files"].as_u64(), summary["failed"].as_u64()), (Some(3), Some(2)), "{summary}");
    assert_eq!((summary["identities"].as_u64(), summary["faces"].as_u64()), (Some(1), Some(1)), "{summary}");
    let lines: Vec<u64> = summary["bad_rows"].as_array().unwrap().iter().map(|b| b["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4], "{summary}");
    let e = err(&o);
    assert!(e.contains("labels.csv:3: bad row") && e.contains("empty label"), "{e}");
    assert!(e.contains("labels.csv:4: bad row") && e.contains("outside"), "{e}");
    assert_eq!(identity_names(&gal), vec!["Yao"]);
    // --help documents the format.
    let h = String::from_utf8_lossy(&faceprint(&["index", "--help"]).stdout).into_owned();
    assert!(h.contains("file,label") && h.contains("relative to DIR") && h.contains("line number"), "{h}");
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn a_truncated_photo_is_never_enrolled_and_is_reported_in_identification() {
    let t = tmpdir("trunc");
    let gal = t.join("gallery");
    let bytes = std::fs::read(common::sample("yaoming.jpg")).unwrap();
    let cut = t.join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 9 / 10]).unwrap();
    assert!(faceprint(&["gallery", "init", "--gallery", s(&gal)]).status.success());
    // A partial photo (the decoder fills the missing part with gray) is refused, and no identity
    // is left behind.
    let o = faceprint(&["enroll", "Yao", s(&cut), "--json", "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("cut.jpg") && err(&o).contains("truncated"), "{}", err(&o));
    assert!(identity_names(&gal).is_empty());
    // Identification of a partial photo goes on, with the warning in JSON and on stderr.
    assert!(faceprint(&["enroll", "Yao", s(&common::sample("yaoming.jpg")), "--gallery", s(&gal)]).status.success());
    let o = faceprint(&["identify", "--json", "--no-cache", s(&cut), "--gallery", s(&gal)]);
    assert!(json_lines(&o)[0]["warnings"][0].as_str().unwrap().contains("truncated"), "{}", String::from_utf8_lossy(&o.stdout));
    let o = faceprint(&["identify", s(&cut), "--gallery", s(&gal)]);
    assert!(err(&o).contains("warning") && err(&o).contains("truncated"), "{}", err(&o));
    // Bulk enrollment reports it as a failed file and enrolls nothing from it.
    std::fs::create_dir_all(t.join("photos/Yao")).unwrap();
    std::fs::write(t.join("photos/Yao/cut2.jpg"), &bytes[..bytes.len() * 17 / 20]).unwrap();
    let o = faceprint(&["index", s(&t.join("photos")), "--json", "--no-cache", "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("cut2.jpg") && err(&o).contains("truncated"), "{}", err(&o));
    let o = faceprint(&["gallery", "list", "--json", "--gallery", s(&gal)]);
    let list = json_lines(&o);
    assert_eq!((list.len(), list[0]["name"].as_str(), list[0]["faces"].as_u64()), (1, Some("Yao"), Some(1)), "{list:?}");
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn path_errors_are_usage_or_bad_input_never_internal() {
    let t = tmpdir("paths");
    let gal = t.join("gallery");
    let y = common::sample("yaoming.jpg");
    assert!(faceprint(&["gallery", "init", "--gallery", s(&gal)]).status.success());
    let file = t.join("afile");
    std::fs::write(&file, b"x").unwrap();
    let dir = t.join("adir");
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = t.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("gallery.sqlite"), b"this is not a database, just text").unwrap();
    let missing = t.join("missing.jpg");
    let (nodir, nocsv, nogallery, noonnx) = (t.join("nodir"), t.join("none.csv"), t.join("nogallery"), t.join("none.onnx"));
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        // Photos and folders of photos: bad input (3).
        (vec!["enroll", "A", s(&missing), "--gallery", s(&gal)], 3, "missing.jpg"),
        (vec!["enroll", "A", s(&dir), "--gallery", s(&gal)], 3, "directory"),
        (vec!["identify", s(&missing), "--gallery", s(&gal)], 3, "missing.jpg"),
        (vec!["index", s(&nodir), "--gallery", s(&gal)], 3, "does not exist"),
        (vec!["index", s(&file), "--gallery", s(&gal)], 3, "not a folder"),
        (vec!["index", s(&dir), "--labels", s(&nocsv), "--gallery", s(&gal)], 3, "none.csv"),
        (vec!["index", s(&dir), "--labels", s(&dir), "--gallery", s(&gal)], 3, "directory"),
        (vec!["eval", "identification", "--root", s(&nodir)], 3, "does not exist"),
        (vec!["eval", "identification", "--root", s(&file)], 3, "not a folder"),
        // A store that is not a database: bad input (3).
        (vec!["gallery", "list", "--gallery", s(&corrupt)], 3, "not a database"),
        (vec!["identify", s(&y), "--gallery", s(&corrupt)], 3, "not a database"),
        // No gallery there, or a file given for the gallery directory: usage (2).
        (vec!["gallery", "list", "--gallery", s(&file)], 2, "is a file"),
        (vec!["enroll", "A", s(&y), "--gallery", s(&nogallery)], 2, "gallery init"),
        (vec!["gallery", "init", "--gallery", s(&file)], 2, "not a directory"),
        // Model files: models (4).
        (vec!["identify", s(&y), "--recognizer", s(&noonnx), "--gallery", s(&gal)], 4, "none.onnx"),
        // Rates outside (0, 1): usage (2), with the range and the operating points.
        (vec!["identify", s(&y), "--far", "2", "--gallery", s(&gal)], 2, "(0, 1)"),
        (vec!["identify", s(&y), "--fpir", "2", "--gallery", s(&gal)], 2, "(0, 1)"),
    ];
    for (args, code, text) in cases {
        let o = faceprint(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(text), "{args:?}: {}", err(&o));
    }
    let o = faceprint(&["identify", s(&y), "--far", "2", "--gallery", s(&gal)]);
    assert!(err(&o).contains("1e-3") && err(&o).contains("1e-6"), "lists the operating points: {}", err(&o));
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn serve_refuses_a_missing_gallery_like_the_other_commands() {
    let t = tmpdir("serve");
    let none = t.join("none");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faceprint"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1", "--gallery", s(&none)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running without a gallery");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut e = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut e).unwrap();
    assert_eq!(status.code(), Some(2), "{e}");
    assert!(e.contains("not a faceprint gallery") && e.contains("--create-gallery"), "{e}");
    assert!(!none.join("gallery.sqlite").exists(), "no gallery was created");
    let _ = std::fs::remove_dir_all(&t);
}

/// `gallery init --index-storage i8`: the choice is recorded and reported by `gallery check`,
/// and `gallery set-index-storage` changes it;
/// enrollment and identification work (similarities rescored from the store, so the same photo
/// scores ≈ 1). `index` on a folder with nothing to enroll is bad input (exit 3) with the reason,
/// not a summary of zero files; `cluster --gallery` on an empty gallery is bad input too.
#[test]
fn an_i8_gallery_identifies_and_an_empty_folder_is_bad_input() {
    let t = tmpdir("i8");
    let gal = t.join("gallery");
    let o = faceprint(&["gallery", "init", "--index-storage", "i8", "--json", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(json_lines(&o)[0]["index_storage"], "i8");
    let o = faceprint(&["gallery", "init", "--index-storage", "i4", "--gallery", s(&t.join("other"))]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let y = common::sample("yaoming.jpg");
    assert!(faceprint(&["enroll", "Yao", s(&y), "--gallery", s(&gal)]).status.success());
    for extra in [&[][..], &["--exact"][..]] {
        let mut args = vec!["identify", "--json", "--gallery", s(&gal), s(&y)];
        args.extend_from_slice(extra);
        let o = faceprint(&args);
        assert!(o.status.success(), "{}", err(&o));
        let r = &json_lines(&o)[0];
        assert_eq!(r["decision"], "match", "{r}");
        assert!(r["matches"][0]["similarity"].as_f64().unwrap() > 0.999, "{r}");
    }
    let o = faceprint(&["gallery", "check", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("i8 index"), "{}", String::from_utf8_lossy(&o.stdout));
    // The storage can be changed later; check --json reports it.
    let o = faceprint(&["gallery", "set-index-storage", "f16", "--json", "--gallery", s(&gal)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!((json_lines(&o)[0]["before"].as_str(), json_lines(&o)[0]["index_storage"].as_str()), (Some("i8"), Some("f16")));
    let o = faceprint(&["gallery", "check", "--json", "--gallery", s(&gal)]);
    assert_eq!(json_lines(&o)[0]["index_storage"], "f16", "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(json_lines(&o)[0]["report"]["index_origin"], "loaded");
    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = faceprint(&["index", s(&empty), "--gallery", s(&gal)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("no image files") && !String::from_utf8_lossy(&o.stdout).contains("0 file(s)"), "{}", err(&o));
    // Clustering an empty gallery is bad input, not a perfect agreement over no pairs.
    let none = t.join("none");
    assert!(faceprint(&["gallery", "init", "--gallery", s(&none)]).status.success());
    let o = faceprint(&["cluster", "--gallery", s(&none)]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("no enrolled faces"), "{}", err(&o));
    let _ = std::fs::remove_dir_all(&t);
}
