//! Prometheus metrics of the service, served at `/metrics` in the text exposition format.

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The service's metrics, registered in their own registry.
pub(crate) struct Metrics {
    registry: Registry,
    /// Requests by route template, method and status code.
    pub requests: IntCounterVec,
    /// Request latency by route template, seconds.
    pub latency: HistogramVec,
    /// Faces per recogniser call.
    pub batch_size: Histogram,
    /// Faces waiting for a shared recogniser batch.
    pub embed_queue: IntGauge,
    /// Requests waiting for an inference slot.
    pub admission_queue: IntGauge,
    /// Requests holding an inference slot.
    pub inflight: IntGauge,
    /// Requests refused by a limit, by reason (`overloaded`, `timeout`, `body_too_large`, …).
    pub rejected: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // Latency buckets from 5 ms to 60 s: a face request takes tens of ms alone, seconds under load.
        let lat_buckets = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
        let requests = IntCounterVec::new(Opts::new("faceprint_http_requests_total", "HTTP requests by route, method and status"), &["route", "method", "status"])
            .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("faceprint_http_request_duration_seconds", "HTTP request latency by route, seconds").buckets(lat_buckets),
            &["route"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("faceprint_embed_batch_size", "Faces per recogniser inference call")
                .buckets(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0]),
        )
        .expect("valid metric");
        let embed_queue = IntGauge::new("faceprint_embed_queue_depth", "Faces waiting for a shared recogniser batch").expect("valid metric");
        let admission_queue = IntGauge::new("faceprint_inference_queue_depth", "Requests waiting for an inference slot").expect("valid metric");
        let inflight = IntGauge::new("faceprint_inferences_in_flight", "Requests holding an inference slot").expect("valid metric");
        let rejected = IntCounterVec::new(Opts::new("faceprint_rejected_total", "Requests refused by a limit, by reason"), &["reason"]).expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(batch_size.clone()),
            Box::new(embed_queue.clone()),
            Box::new(admission_queue.clone()),
            Box::new(inflight.clone()),
            Box::new(rejected.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics { registry, requests, latency, batch_size, embed_queue, admission_queue, inflight, rejected }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}
