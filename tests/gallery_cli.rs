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
