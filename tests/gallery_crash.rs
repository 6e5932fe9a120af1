//! Crash safety: a child process enrolls in a loop and prints each acknowledged face id; it is
//! killed with SIGKILL at random moments, 25 times. After every kill the gallery reopens, holds
//! every acknowledged enrollment, and passes its integrity check.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use faceprint::gallery::{Gallery, GalleryOptions, IdentityRef};

const KILLS: usize = 25;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faceprint-gallery-crash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn acknowledged_enrollments_survive_sigkill() {
    let dir = tmpdir("loop");
    let exe = env!("CARGO_BIN_EXE_faceprint");
    // Seeded delays (xorshift), 5–150 ms after the first acknowledgement: kills land before,
    // during and after commits.
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    };
    let mut acked: Vec<(i64, String)> = Vec::new();
    let mut killed_mid_run = 0;
    for round in 0..KILLS {
        let mut child = Command::new(exe)
            .args(["gallery", "stress-enroll", "--dim", "128", "--gallery"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn faceprint");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        // Wait for the first acknowledgement (the child is up), then kill after a random delay.
        let first = rx.recv_timeout(Duration::from_secs(60));
        let mut lines: Vec<String> = first.into_iter().collect();
        std::thread::sleep(Duration::from_millis(5 + rnd(145)));
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill failed");
        let status = child.wait().expect("wait");
        reader.join().expect("reader");
        lines.extend(rx.try_iter());
        if status.code().is_none() {
            killed_mid_run += 1;
        } else {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("round {round}: the child exited by itself with {status}: {err}");
        }
        // Only complete lines are acknowledgements (a line cut by the kill has no newline and
        // is not returned by `lines()` as complete... unless it parses fully).
        for l in &lines {
            let mut it = l.split(' ');
            if let (Some(Ok(id)), Some(name), None) = (it.next().map(str::parse::<i64>), it.next(), it.next()) {
                acked.push((id, name.to_string()));
            }
        }
        // Reopen after every kill: everything acknowledged so far is there; the store is sound.
        let g = Gallery::open(&dir, GalleryOptions::default()).expect("reopen after SIGKILL");
        let report = g.check().expect("check");
        assert!(report.ok(), "round {round}: {report:?}");
        for (id, name) in &acked {
            let f = g.face(*id).unwrap_or_else(|e| panic!("round {round}: acknowledged face {id} lost: {e}"));
            let ident = g.identity(&IdentityRef::Id(f.identity)).expect("identity of an acknowledged face");
            assert_eq!(&ident.identity.name, name);
        }
        assert!(g.len() >= acked.len());
    }
    assert_eq!(killed_mid_run, KILLS);
    assert!(acked.len() >= KILLS, "only {} enrollments acknowledged", acked.len());
    eprintln!("{} acknowledged enrollments survived {KILLS} SIGKILLs", acked.len());
    let _ = std::fs::remove_dir_all(&dir);
}
