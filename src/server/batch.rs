//! Shared recogniser batches: the aligned faces of requests that arrive within a short window are
//! embedded in one recogniser call ([`FaceAnalyzer::embed_crops`]).
//!
//! A batch runs when [`ServerConfig::max_batch`](super::ServerConfig::max_batch) faces are waiting,
//! or [`ServerConfig::batch_wait_us`](super::ServerConfig::batch_wait_us) after its first face
//! arrived, whichever comes first. One worker thread per recogniser session collects and runs
//! batches, so while one batch runs the next is being gathered.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use tokio::sync::oneshot;

use crate::embed::Embedding;
use crate::pipeline::FaceAnalyzer;
use crate::Error;

use super::metrics::Metrics;

struct Job {
    crops: Vec<RgbImage>,
    reply: oneshot::Sender<Result<Vec<Embedding>, Error>>,
}

/// Handle to the batch workers. Dropping it closes the queue; workers finish the batches they
/// have and stop.
pub(crate) struct Batcher {
    tx: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl Batcher {
    /// Starts `threads` workers.
    pub fn start(analyzer: Arc<FaceAnalyzer>, threads: usize, wait: Duration, max_batch: usize, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads.max(1))
            .map(|i| {
                let (rx, analyzer, metrics) = (rx.clone(), analyzer.clone(), metrics.clone());
                std::thread::Builder::new()
                    .name(format!("faceprint-batch-{i}"))
                    .spawn(move || worker(&rx, &analyzer, wait, max_batch, &metrics))
                    .expect("spawning a thread")
            })
            .collect();
        Batcher { tx: Mutex::new(Some(tx)), workers: Mutex::new(workers), metrics }
    }

    /// Embeds `crops` in a shared batch; one embedding per crop, in order.
    ///
    /// # Errors
    /// As [`FaceAnalyzer::embed_crops`]; [`Error::InvalidParameter`] once the batcher is closed.
    pub async fn embed(&self, crops: Vec<RgbImage>) -> Result<Vec<Embedding>, Error> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let n = crops.len() as i64;
        let (reply, rx) = oneshot::channel();
        let closed = || Error::InvalidParameter { name: "batcher", message: "the service is shutting down".into() };
        {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            let tx = tx.as_ref().ok_or_else(closed)?;
            self.metrics.embed_queue.add(n);
            if tx.send(Job { crops, reply }).is_err() {
                self.metrics.embed_queue.sub(n);
                return Err(closed());
            }
        }
        rx.await.map_err(|_| closed())?
    }

    /// Closes the queue and waits for the workers to finish what they hold.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, analyzer: &FaceAnalyzer, wait: Duration, max_batch: usize, metrics: &Metrics) {
    loop {
        let mut jobs: Vec<Job> = Vec::new();
        let mut n = 0usize;
        {
            // One worker gathers at a time; the others run their batches meanwhile.
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(j) => {
                    n += j.crops.len();
                    jobs.push(j);
                }
                Err(_) => return,
            }
            let deadline = Instant::now() + wait;
            while n < max_batch {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match rx.recv_timeout(deadline - now) {
                    Ok(j) => {
                        n += j.crops.len();
                        jobs.push(j);
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        metrics.embed_queue.sub(n as i64);
        metrics.batch_size.observe(n as f64);
        let crops: Vec<&RgbImage> = jobs.iter().flat_map(|j| j.crops.iter()).collect();
        match analyzer.embed_crops(&crops) {
            Ok(all) => {
                let mut all = all.into_iter();
                for j in jobs {
                    let mine: Vec<Embedding> = all.by_ref().take(j.crops.len()).collect();
                    let _ = j.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for j in jobs {
                    let _ = j.reply.send(Err(Error::Inference { model: "recognizer".into(), message: message.clone() }));
                }
            }
        }
    }
}
