//! Load and soak client for `faceprint serve` (README "HTTP service", BENCHMARKS.md).
//!
//! Loopback only: the URL must point at 127.0.0.0/8 or localhost. Bounded in time and count.
//!
//! ```text
//! loadtest load --url http://127.0.0.1:8080 --data ../shared/data --clients 32 --seconds 60 [--pid PID]
//! loadtest soak --url http://127.0.0.1:8080 --data ../shared/data --requests 10000 [--pid PID]
//! ```
//! `load` enrolls one photo of each of 40 LFW people (identities with at least 2 photos), then
//! runs the clients for the given time, each alternating verify (same or different person, half
//! each) and identify (another photo of an enrolled person). `soak` sends sequential verify
//! requests and samples the server's RSS every 500 requests. Both print a JSON summary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::Client;
use serde_json::{json, Value};

struct Args {
    mode: String,
    url: String,
    data: PathBuf,
    clients: usize,
    seconds: u64,
    requests: usize,
    pid: Option<u32>,
    key: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("usage: loadtest load|soak --url URL --data DIR [--clients N --seconds S | --requests N] [--pid PID] [--key KEY]")?;
    let mut a = Args { mode, url: "http://127.0.0.1:8080".into(), data: "../shared/data".into(), clients: 32, seconds: 60, requests: 10_000, pid: None, key: None };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => a.url = v,
            "--data" => a.data = v.into(),
            "--clients" => a.clients = num(&v)?.clamp(1, 256) as usize,
            "--seconds" => a.seconds = num(&v)?.clamp(1, 600),
            "--requests" => a.requests = num(&v)?.clamp(1, 100_000) as usize,
            "--pid" => a.pid = Some(num(&v)? as u32),
            "--key" => a.key = Some(v),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let host = a.url.trim_start_matches("http://").split(['/', ':']).next().unwrap_or("");
    if !(host == "localhost" || host.starts_with("127.")) {
        return Err(format!("{}: loopback addresses only", a.url));
    }
    Ok(a)
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// LFW people with at least two photos, sorted by name: (name, [photos]).
fn people(data: &Path, n: usize) -> Vec<(String, Vec<PathBuf>)> {
    let root = data.join("lfw/lfw_funneled");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&root).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    names.sort();
    let mut out = Vec::new();
    for dir in names {
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        photos.sort();
        if photos.len() >= 2 {
            out.push((dir.file_name().unwrap().to_string_lossy().into_owned(), photos));
        }
        if out.len() == n {
            break;
        }
    }
    out
}

struct Photos {
    bytes: Vec<(String, Vec<u8>)>,
}

fn part(p: &(String, Vec<u8>)) -> Part {
    Part::bytes(p.1.clone()).file_name(p.0.clone())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let client = Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(a.clients).build().expect("client");
    let key = a.key.clone();
    let with_key = move |r: reqwest::blocking::RequestBuilder| match &key {
        Some(k) => r.header("X-API-Key", k.as_str()),
        None => r,
    };
    let ppl = people(&a.data, 40);
    if ppl.len() < 2 {
        eprintln!("no LFW photos under {}", a.data.display());
        std::process::exit(3);
    }
    let load = |p: &Path| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).expect("photo"));
    let first = Photos { bytes: ppl.iter().map(|(_, ph)| load(&ph[0])).collect() };
    let second = Photos { bytes: ppl.iter().map(|(_, ph)| load(&ph[1])).collect() };
    let n = ppl.len();
    let rss_start = rss_kib(a.pid);

    if a.mode == "soak" {
        let mut samples = vec![json!({"requests": 0, "rss_kib": rss_start})];
        let (mut errors, t0) = (0usize, Instant::now());
        for i in 0..a.requests {
            let j = i % n;
            let b = if i % 2 == 0 { &second.bytes[j] } else { &first.bytes[(j + 1) % n] };
            let form = Form::new().part("a", part(&first.bytes[j])).part("b", part(b));
            match with_key(client.post(format!("{}/v1/verify", a.url)).multipart(form)).send() {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes();
                }
                Ok(r) if r.status().is_client_error() => {
                    let _ = r.bytes();
                } // a photo refused by the quality gate is a valid answer
                _ => errors += 1,
            }
            if (i + 1) % 500 == 0 {
                samples.push(json!({"requests": i + 1, "rss_kib": rss_kib(a.pid), "seconds": t0.elapsed().as_secs_f64()}));
            }
        }
        println!("{}", json!({"mode": "soak", "requests": a.requests, "errors_5xx_or_transport": errors, "seconds": t0.elapsed().as_secs_f64(), "rss_samples": samples}));
        return;
    }

    // Enroll the first photo of each person.
    for (i, (name, _)) in ppl.iter().enumerate() {
        let r = with_key(client.post(format!("{}/v1/gallery/identities", a.url)).json(&json!({"name": name}))).send().expect("create identity");
        let st = r.status().as_u16();
        if st != 201 && st != 409 {
            eprintln!("creating {name}: {st} {}", r.text().unwrap_or_default());
            std::process::exit(1);
        }
        let form = Form::new().part("image", part(&first.bytes[i])).text("largest", "true");
        let r = with_key(client.post(format!("{}/v1/gallery/identities/{}/faces", a.url, name)).multipart(form)).send().expect("enroll");
        let _ = r.bytes();
    }
    let rss_before = rss_kib(a.pid);
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let transport_errors = Arc::new(AtomicU64::new(0));
    let first = Arc::new(first);
    let second = Arc::new(second);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(a.seconds);
    // The server's RSS every 5 s of the run: growth should stop after the warm-up.
    let sampler = {
        let (stop, pid) = (stop.clone(), a.pid);
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(700) {
                out.push(json!({"second": t0.elapsed().as_secs(), "rss_kib": rss_kib(pid)}));
                for _ in 0..50 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            out
        })
    };
    let threads: Vec<_> = (0..a.clients)
        .map(|c| {
            let (client, url, stop, counts, lat, te, first, second, key) =
                (client.clone(), a.url.clone(), stop.clone(), counts.clone(), lat.clone(), transport_errors.clone(), first.clone(), second.clone(), a.key.clone());
            std::thread::spawn(move || {
                let mut i = c * 7919;
                let mut mine = Vec::new();
                // Bounded: the deadline, and at most 100,000 requests per client.
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        break;
                    }
                    i += 1;
                    let j = i % n;
                    let req = if i % 2 == 0 {
                        let b = if (i / 2) % 2 == 0 { &second.bytes[j] } else { &first.bytes[(j + 1) % n] };
                        client.post(format!("{url}/v1/verify")).multipart(Form::new().part("a", part(&first.bytes[j])).part("b", part(b)))
                    } else {
                        client.post(format!("{url}/v1/identify")).multipart(Form::new().part("image", part(&second.bytes[j])))
                    };
                    let req = match &key {
                        Some(k) => req.header("X-API-Key", k.as_str()),
                        None => req,
                    };
                    let s = Instant::now();
                    match req.send() {
                        Ok(r) => {
                            let st = r.status().as_u16();
                            let _ = r.bytes();
                            mine.push(s.elapsed().as_secs_f64() * 1e3);
                            *counts.lock().unwrap().entry(st).or_default() += 1;
                        }
                        Err(_) => {
                            te.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    stop.store(true, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let rss_series = sampler.join().unwrap_or_default();
    let rss_after = rss_kib(a.pid);
    let mut l = lat.lock().unwrap().clone();
    l.sort_by(|x, y| x.total_cmp(y));
    let counts = counts.lock().unwrap().clone();
    let total: u64 = counts.values().sum();
    let five = counts.iter().filter(|(k, _)| **k >= 500).map(|(_, v)| v).sum::<u64>();
    let metrics = client.get(format!("{}/metrics", a.url)).send().and_then(|r| r.text()).unwrap_or_default();
    let batch = |suffix: &str| {
        metrics.lines().find(|l| l.starts_with(&format!("faceprint_embed_batch_size_{suffix} "))).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok())
    };
    let mean_batch = match (batch("sum"), batch("count")) {
        (Some(s), Some(c)) if c > 0.0 => Some(s / c),
        _ => None,
    };
    println!(
        "{}",
        json!({
            "mode": "load", "clients": a.clients, "seconds": secs, "requests": total,
            "status_counts": counts.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<String, Value>>(),
            "responses_5xx": five, "transport_errors": transport_errors.load(Ordering::Relaxed),
            "throughput_rps": total as f64 / secs,
            "latency_ms": {"p50": percentile(&l, 0.5), "p90": percentile(&l, 0.9), "p99": percentile(&l, 0.99), "max": l.last()},
            "rss_kib": {"at_start": rss_start, "after_enrollment": rss_before, "after_run": rss_after, "every_5_s": rss_series},
            "mean_faces_per_recogniser_call": mean_batch,
        })
    );
}
