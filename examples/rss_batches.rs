//! Memory probe for the recogniser's batch shapes (BENCHMARKS.md, "HTTP service", "Memory with
//! batching"). Two threads share two recogniser sessions, as `faceprint serve` does, and embed
//! synthetic 112×112 crops in batches of random size 1–32 (seeded); VmRSS is printed every 100
//! calls of the first thread.
//!
//! ```text
//! cargo run --release --example rss_batches -- [CALLS per thread, default 400] [random|warm|warmall]
//! ```
//! `random`: no warm-up. `warm`: the first call of each thread is a batch of 32.
//! `warmall`: [`ArcFaceRecognizer::warm_up`](faceprint::embed::ArcFaceRecognizer::warm_up) first.
//! Needs the default models (`faceprint models install`).

use std::sync::{Arc, Barrier};

use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer};
use image::RgbImage;
use rand::{Rng, SeedableRng};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let calls: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(400);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "random".into());
    let mut cfg = AnalyzerConfig::default();
    cfg.runtime.sessions = 2;
    let analyzer = Arc::new(FaceAnalyzer::load(cfg).expect("loading the default models (run `faceprint models install`)"));
    println!("start: RSS {} KiB", rss_kib());
    if mode == "warmall" {
        let t = std::time::Instant::now();
        analyzer.recognizer().expect("recogniser").warm_up().expect("warm-up");
        println!("warm-up: {:.2} s, RSS {} KiB", t.elapsed().as_secs_f64(), rss_kib());
    }
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (analyzer, mode, barrier) = (analyzer.clone(), mode.clone(), &barrier);
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                let crops: Vec<RgbImage> =
                    (0..32u32).map(|i| RgbImage::from_fn(112, 112, |x, y| image::Rgb([(x * 2 + i) as u8, (y * 2) as u8, (x + y) as u8]))).collect();
                for i in 0..calls {
                    let n = if mode == "warm" && i == 0 { 32 } else { rng.random_range(1..=32) };
                    let refs: Vec<&RgbImage> = crops[..n].iter().collect();
                    analyzer.embed_crops(&refs).expect("embedding");
                    if i == 1 {
                        barrier.wait();
                        if t == 0 {
                            println!("after the first calls of both threads: RSS {} KiB", rss_kib());
                        }
                    }
                    if t == 0 && i % 100 == 99 {
                        println!("{} calls: RSS {} KiB", i + 1, rss_kib());
                    }
                }
            });
        }
    });
}
