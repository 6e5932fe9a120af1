//! The pipeline: decoded image → detections → aligned crops → embeddings → decisions.
//!
//! [`FaceAnalyzer`] owns one detector and one recogniser session (created once, shared by
//! reference, usable from several threads) and is the library API that the CLI calls.
//!
//! Face order: the faces of an image are numbered from 0 by box area, largest first. That is the
//! index `--face-a N` / `--face-b N` and [`FaceSelection::Index`] refer to.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::align::{self, AlignedFace};
use crate::cache::EmbeddingCache;
use crate::calibrate::Calibration;
use crate::compare::{self, Comparison, Threshold};
use crate::detect::{Detection, DetectorParams, ScrfdDetector};
use crate::embed::{ArcFaceRecognizer, Embedding, ModelId, DEFAULT_BATCH_SIZE};
use crate::error::{Error, Result};
use crate::imageio::{self, DecodeOptions, DecodedImage};
use crate::models::{self, Role};
use crate::quality::{self, FaceQuality, QualityGate};
use crate::runtime::{self, RuntimeOptions};

/// Everything needed to build a [`FaceAnalyzer`]. Defaults: the default pack in the data
/// directory, default detector parameters, batches of [`DEFAULT_BATCH_SIZE`] faces.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Data directory ([`models::data_dir`] resolves `None`).
    pub data_dir: Option<PathBuf>,
    /// Detector ONNX file; default `<data>/models/scrfd_500m_bnkps.onnx`.
    pub detector: Option<PathBuf>,
    /// Recogniser ONNX file; default `<data>/models/w600k_mbf.onnx`.
    pub recognizer: Option<PathBuf>,
    /// ONNX Runtime library and threads.
    pub runtime: RuntimeOptions,
    /// Detector parameters.
    pub detector_params: DetectorParams,
    /// Image decoding options.
    pub decode: DecodeOptions,
    /// Faces per recogniser call (≥ 1).
    pub batch_size: usize,
    /// Load the recogniser (false for detection-only use: faster start).
    pub load_recognizer: bool,
    /// Images analysed at once by [`FaceAnalyzer::analyze_files`] (≥ 1). With more than one,
    /// each model gets that many single-threaded sessions ([`RuntimeOptions::sessions`]) instead of
    /// one session on the shared multi-threaded pool. Default 1.
    pub workers: usize,
    /// Embed each face also mirrored and average (flip test; twice the recogniser time, higher
    /// accuracy: see README). Default false.
    pub flip: bool,
    /// Minimums a face must meet in [`FaceAnalyzer::verify`]; [`QualityGate::off`] disables it.
    pub quality_gate: QualityGate,
    /// Embedding cache file, or `None` for no cache. Used by [`FaceAnalyzer::analyze_files`]
    /// when embedding. Default `None` (the CLI passes `<data>/cache/embeddings.sqlite`).
    pub cache: Option<PathBuf>,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            data_dir: None,
            detector: None,
            recognizer: None,
            runtime: RuntimeOptions::default(),
            detector_params: DetectorParams::default(),
            decode: DecodeOptions::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            load_recognizer: true,
            workers: 1,
            flip: false,
            quality_gate: QualityGate::default(),
            cache: None,
        }
    }
}

/// One face of an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Face {
    /// 0-based index in the image, by box area, largest first.
    pub index: usize,
    /// Box, landmarks and score, pixels in the oriented image.
    #[serde(flatten)]
    pub detection: Detection,
    /// Face size: the shorter side of the box, pixels.
    pub size: f32,
    /// Quality measures (size, score, pose, sharpness).
    pub quality: FaceQuality,
    /// The embedding, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Embedding>,
}

/// The result of analysing one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalyzedImage {
    /// The file (or label) the image came from.
    pub path: PathBuf,
    /// Oriented image width, pixels.
    pub width: u32,
    /// Oriented image height, pixels.
    pub height: u32,
    /// EXIF orientation applied (1 = none).
    pub orientation: u16,
    /// Non-fatal problems (e.g. an invalid EXIF orientation ignored, a face that could not be aligned).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
    /// True when the file's data ends early and part of the image was filled in by the decoder
    /// ([`crate::imageio::DecodedImage::truncated`]): such a photo is never enrolled.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub truncated: bool,
    /// Faces, largest first.
    pub faces: Vec<Face>,
}

/// An image detected, aligned and measured but not yet embedded ([`FaceAnalyzer::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The analysis so far: faces with boxes, landmarks and quality, without embeddings.
    pub image: AnalyzedImage,
    /// The aligned 112×112 crops, one per face of `image`, in face order.
    pub crops: Vec<RgbImage>,
}

impl PreparedImage {
    /// The analysis so far (faces without embeddings).
    pub fn image(&self) -> &AnalyzedImage {
        &self.image
    }

    /// The aligned 112×112 crops, one per face of [`Self::image`], in face order.
    pub fn crops(&self) -> Vec<&RgbImage> {
        self.crops.iter().collect()
    }

    /// The finished analysis: `embeddings` (one per crop, in order, e.g. from
    /// [`FaceAnalyzer::embed_crops`]) attached to the faces, or none.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the number of embeddings is not the number of faces.
    pub fn finish(self, embeddings: Option<Vec<Embedding>>) -> Result<AnalyzedImage> {
        let mut image = self.image;
        if let Some(e) = embeddings {
            if e.len() != image.faces.len() {
                return Err(Error::InvalidParameter {
                    name: "embeddings",
                    message: format!("{} embeddings for {} faces", e.len(), image.faces.len()),
                });
            }
            for (f, e) in image.faces.iter_mut().zip(e) {
                f.embedding = Some(e);
            }
        }
        Ok(image)
    }
}

/// Which face of a multi-face image a 1:1 comparison uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaceSelection {
    /// The face with the largest box (index 0). The default.
    #[default]
    Largest,
    /// The face with this 0-based index (largest first).
    Index(usize),
}

/// Which face of an image was used in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct UsedFace {
    /// The image.
    pub path: PathBuf,
    /// Index of the face used (largest first).
    pub face: usize,
    /// How many faces the image has.
    pub faces_in_image: usize,
    /// Its box `[x1, y1, x2, y2]`, pixels.
    pub bbox: [f32; 4],
    /// Its detection score in [0, 1].
    pub score: f32,
}

/// A 1:1 verification result: the comparison and which face of each image it used.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Cosine similarity, distance, threshold and decision.
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Face used from the first image.
    pub a: UsedFace,
    /// Face used from the second image.
    pub b: UsedFace,
    /// Model that made both embeddings.
    pub model: ModelId,
}

/// Detector + recogniser, loaded once. `Send + Sync`.
#[derive(Debug)]
pub struct FaceAnalyzer {
    detector: ScrfdDetector,
    recognizer: Option<ArcFaceRecognizer>,
    config: AnalyzerConfig,
    data_dir: PathBuf,
    cache: Option<EmbeddingCache>,
    cache_problem: Option<String>,
}

impl FaceAnalyzer {
    /// Initialises ONNX Runtime (once per process) and loads the models, verifying the default
    /// pack's files against their pinned SHA-256.
    ///
    /// # Errors
    /// [`Error::Model`] naming the missing, altered or unusable file and the command that fixes it;
    /// [`Error::InvalidParameter`] for bad detector parameters.
    pub fn load(config: AnalyzerConfig) -> Result<Self> {
        config.detector_params.validate()?;
        config.quality_gate.validate()?;
        let data = models::data_dir(config.data_dir.as_deref());
        let det_path = config.detector.clone().unwrap_or_else(|| models::default_path(&data, Role::Detector));
        let rec_path = config.recognizer.clone().unwrap_or_else(|| models::default_path(&data, Role::Recognizer));
        // Check the model files before loading the runtime, so a missing pack is reported as such.
        models::verify_file(&det_path, Role::Detector)?;
        if config.load_recognizer {
            models::verify_file(&rec_path, Role::Recognizer)?;
        }
        let mut rt = config.runtime.clone();
        if config.workers > 1 {
            rt.sessions = rt.sessions.max(config.workers);
        }
        runtime::init(&data, &rt)?;
        let detector = ScrfdDetector::load(&det_path, &rt)?;
        if !detector.has_landmarks() {
            return Err(Error::Model(models::ModelError::Incompatible {
                role: Role::Detector.to_string(),
                path: det_path,
                detail: "the model predicts no landmarks; alignment needs 5".into(),
            }));
        }
        let recognizer = if config.load_recognizer {
            Some(ArcFaceRecognizer::load(&rec_path, &rt)?.with_batch_size(config.batch_size))
        } else {
            None
        };
        // An unusable cache (corrupt file, read-only folder) must not stop the analysis: it is
        // reported by `cache_problem` and the analyzer runs uncached.
        let (cache, cache_problem) = match &config.cache {
            Some(p) => match EmbeddingCache::open(p) {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(format!("{e}; running without the cache (delete the file, or pass --no-cache or --cache FILE)"))),
            },
            None => (None, None),
        };
        Ok(FaceAnalyzer { detector, recognizer, config, data_dir: data, cache, cache_problem })
    }

    /// Everything that changes an analysis result, as a string: detector file hash, recogniser
    /// model id, detector parameters, decoding options. The embedding cache's key.
    pub fn pipeline_key(&self) -> String {
        let p = &self.config.detector_params;
        format!(
            "v2;det={};rec={};flip={};size={};maxup={};thr={};nms={};ff={:?};max={};exif={};maxpx={}",
            &self.detector.sha256()[..16],
            self.recognizer.as_ref().map_or("none".to_string(), |r| r.model_id().to_string()),
            self.config.flip,
            p.input_size,
            p.max_upscale,
            p.score_threshold,
            p.nms_iou,
            p.full_frame_input_size,
            p.max_faces,
            self.config.decode.apply_exif_orientation,
            self.config.decode.max_pixels
        )
    }

    /// Why the configured cache could not be opened, if it could not (the analyzer then runs
    /// without it).
    pub fn cache_problem(&self) -> Option<&str> {
        self.cache_problem.as_deref()
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The calibration of the loaded recogniser (user file or compiled-in default).
    ///
    /// # Errors
    /// [`Error::Calibration`] when none exists for the model.
    pub fn calibration(&self) -> Result<Calibration> {
        Ok(Calibration::for_embeddings(&self.data_dir, self.model_id()?, self.config.flip)?)
    }

    /// The decision threshold of the operating point at `far` (e.g. 1e-3) for the loaded model.
    ///
    /// # Errors
    /// [`Error::Calibration`]: no calibration, or no supported operating point at `far`.
    pub fn threshold_at_far(&self, far: f64) -> Result<Threshold> {
        Ok(self.calibration()?.threshold_at(far)?)
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The detector.
    pub fn detector(&self) -> &ScrfdDetector {
        &self.detector
    }

    /// The recogniser, if loaded.
    pub fn recognizer(&self) -> Option<&ArcFaceRecognizer> {
        self.recognizer.as_ref()
    }

    fn recognizer_or_err(&self) -> Result<&ArcFaceRecognizer> {
        self.recognizer.as_ref().ok_or(Error::InvalidParameter {
            name: "load_recognizer",
            message: "the analyzer was loaded without a recogniser".into(),
        })
    }

    /// The model id of the recogniser's embeddings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when loaded without a recogniser.
    pub fn model_id(&self) -> Result<&ModelId> {
        Ok(self.recognizer_or_err()?.model_id())
    }

    /// Detects faces, sorted by box area, largest first.
    ///
    /// # Errors
    /// [`Error::Inference`] when ONNX Runtime fails.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>> {
        let mut dets = self.detector.detect(img, &self.config.detector_params)?;
        dets.sort_by(|a, b| b.area().total_cmp(&a.area()));
        Ok(dets)
    }

    /// Aligns each detection to the 112×112 ArcFace template. `None` for degenerate landmarks.
    pub fn align(&self, img: &RgbImage, dets: &[Detection]) -> Vec<Option<AlignedFace>> {
        dets.iter().map(|d| align::align_face(img, &d.landmarks)).collect()
    }

    /// Detects, aligns, measures the quality of and (if `embed`) embeds every face of a decoded
    /// image. Same as [`Self::prepare`], then (if `embed`) [`Self::embed_crops`] on its crops and
    /// [`PreparedImage::finish`].
    ///
    /// # Errors
    /// [`Error::Inference`]; [`Error::InvalidParameter`] when `embed` is asked of a detector-only analyzer.
    pub fn analyze(&self, path: &Path, img: &DecodedImage, embed: bool) -> Result<AnalyzedImage> {
        let prepared = self.prepare(path, img)?;
        if !embed {
            return prepared.finish(None);
        }
        let embeddings = self.embed_crops(&prepared.crops())?;
        prepared.finish(Some(embeddings))
    }

    /// The first half of [`Self::analyze`]: detects, aligns and measures the quality of every
    /// face, without embedding. The aligned crops ([`PreparedImage::crops`]) can then be embedded
    /// together with those of other images in one recogniser batch ([`Self::embed_crops`]) — what
    /// the HTTP service does for requests that arrive together.
    ///
    /// # Errors
    /// [`Error::Inference`] when the detector fails.
    pub fn prepare(&self, path: &Path, img: &DecodedImage) -> Result<PreparedImage> {
        let dets = self.detect(&img.image)?;
        let mut warnings = img.warnings.clone();
        let aligned = self.align(&img.image, &dets);
        let mut faces = Vec::with_capacity(dets.len());
        let mut crops = Vec::with_capacity(dets.len());
        for (d, a) in dets.into_iter().zip(aligned) {
            match a {
                Some(a) => {
                    faces.push(Face { index: faces.len(), size: d.size(), quality: quality::measure(&d, &a.image), detection: d, embedding: None });
                    crops.push(a.image);
                }
                None => warnings.push(format!("face at {:?}: degenerate landmarks, cannot align; skipped", d.bbox)),
            }
        }
        let image = AnalyzedImage {
            path: path.to_path_buf(),
            width: img.image.width(),
            height: img.image.height(),
            orientation: img.orientation,
            warnings,
            truncated: img.truncated,
            faces,
        };
        Ok(PreparedImage { image, crops })
    }

    /// Embeds aligned 112×112 crops — from one image or from many — in recogniser batches of
    /// [`AnalyzerConfig::batch_size`], with the configured flip test. One embedding per crop, in
    /// order.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a detector-only analyzer or a crop that is not 112×112;
    /// [`Error::Inference`] when ONNX Runtime fails.
    pub fn embed_crops(&self, crops: &[&RgbImage]) -> Result<Vec<Embedding>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        self.recognizer_or_err()?.embed_with(crops, self.config.flip)
    }

    /// Decodes the file at `path` and analyses it.
    ///
    /// # Errors
    /// [`Error::Image`] naming the file when it cannot be read or decoded; as [`Self::analyze`].
    pub fn analyze_file(&self, path: &Path, embed: bool) -> Result<AnalyzedImage> {
        let img = self.decode_file(path)?;
        self.analyze(path, &img, embed)
    }

    /// Decodes the file at `path` with the configured [`DecodeOptions`].
    ///
    /// # Errors
    /// [`Error::Image`] naming the file.
    pub fn decode_file(&self, path: &Path) -> Result<DecodedImage> {
        imageio::open(path, &self.config.decode).map_err(|source| Error::Image { path: path.to_path_buf(), source })
    }

    /// Analyses many files: one thread reads and decodes ahead while [`AnalyzerConfig::workers`]
    /// threads run inference. With a cache configured and `embed`, an image whose content
    /// hash and [`Self::pipeline_key`] are cached is not decoded or analysed again, and new
    /// results are stored in batches of 64. Calls `on_result` once per path, in input order; a
    /// broken file gives an `Err` for that path and the rest go on.
    ///
    /// # Errors
    /// [`Error::Cache`] when results could not be written to the cache (every file is still
    /// analysed and reported; caching stops at the first write failure).
    pub fn analyze_files<F>(&self, paths: &[PathBuf], embed: bool, mut on_result: F) -> Result<()>
    where
        F: FnMut(&Path, Result<AnalyzedImage>),
    {
        enum Item {
            Cached(AnalyzedImage),
            Decoded(Option<String>, DecodedImage),
        }
        let cache = if embed { self.cache.as_ref() } else { None };
        let key = self.pipeline_key();
        let workers = self.config.workers.max(1);
        let (tx, rx) = mpsc::sync_channel::<(usize, Result<Item>)>(2 * workers);
        let rx = std::sync::Mutex::new(rx);
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<AnalyzedImage>, Option<String>)>();
        let mut pending: Vec<(String, AnalyzedImage)> = Vec::new();
        let mut cache_error: Option<Error> = None;
        let flush = |pending: &mut Vec<(String, AnalyzedImage)>, cache_error: &mut Option<Error>| {
            if let (Some(c), None) = (cache, &cache_error) {
                let entries: Vec<(String, String, &AnalyzedImage)> = pending.iter().map(|(h, a)| (h.clone(), key.clone(), a)).collect();
                if let Err(e) = c.put_many(&entries) {
                    *cache_error = Some(e.into());
                }
            }
            pending.clear();
        };
        std::thread::scope(|scope| {
            let decode = self.config.decode.clone();
            let key = &key;
            // Reader: bytes, content hash, cache lookup, decode.
            scope.spawn(move || {
                for (i, p) in paths.iter().enumerate() {
                    let item = (|| -> Result<Item> {
                        let image_err = |source| Error::Image { path: p.clone(), source };
                        let bytes = std::fs::read(p).map_err(|e| image_err(imageio::ImageError::Io(e)))?;
                        let hash = cache.map(|_| hex::encode(Sha256::digest(&bytes)));
                        if let (Some(c), Some(h)) = (cache, &hash) {
                            if let Some(mut hit) = c.get(h, key)? {
                                hit.path = p.clone();
                                return Ok(Item::Cached(hit));
                            }
                        }
                        let img = imageio::decode(&bytes, &decode).map_err(image_err)?;
                        Ok(Item::Decoded(hash, img))
                    })();
                    if tx.send((i, item)).is_err() {
                        break;
                    }
                }
            });
            // Inference workers.
            for _ in 0..workers {
                let (rx, done_tx) = (&rx, done_tx.clone());
                scope.spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((i, item)) = next else { break };
                    let out = match item {
                        Ok(Item::Cached(hit)) => (i, Ok(hit), None),
                        Ok(Item::Decoded(hash, img)) => (i, self.analyze(&paths[i], &img, embed), hash),
                        Err(e) => (i, Err(e), None),
                    };
                    if done_tx.send(out).is_err() {
                        break;
                    }
                });
            }
            drop(done_tx);
            // Results in input order.
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0usize;
            for (i, r, hash) in done_rx {
                waiting.insert(i, (r, hash));
                while let Some((r, hash)) = waiting.remove(&next) {
                    if let (Ok(a), Some(h)) = (&r, hash) {
                        pending.push((h, a.clone()));
                    }
                    on_result(&paths[next], r);
                    next += 1;
                    if pending.len() >= 64 {
                        flush(&mut pending, &mut cache_error);
                    }
                }
            }
        });
        flush(&mut pending, &mut cache_error);
        cache_error.map_or(Ok(()), Err)
    }

    /// 1:1 verification of two analysed images (analysed with `embed = true`), using the faces
    /// chosen by `sel_a` / `sel_b`, at `threshold`.
    ///
    /// # Errors
    /// [`Error::NoFace`] naming the image without a face; [`Error::FaceIndex`] for an index past
    /// the faces found; [`Error::Quality`] for a face below the configured quality gate;
    /// [`Error::Compare`] for embeddings of different models.
    pub fn verify(
        &self,
        a: &AnalyzedImage,
        b: &AnalyzedImage,
        sel_a: FaceSelection,
        sel_b: FaceSelection,
        threshold: &Threshold,
    ) -> Result<Verification> {
        let (fa, ua) = self.pick(a, sel_a)?;
        let (fb, ub) = self.pick(b, sel_b)?;
        for (img, f) in [(a, fa), (b, fb)] {
            self.config
                .quality_gate
                .check(&f.quality)
                .map_err(|failure| Error::Quality { path: img.path.clone(), face: f.index, failure })?;
        }
        let (ea, eb) = match (&fa.embedding, &fb.embedding) {
            (Some(ea), Some(eb)) => (ea, eb),
            _ => {
                return Err(Error::InvalidParameter { name: "embed", message: "verify needs images analysed with embeddings".into() })
            }
        };
        let comparison = compare::compare(ea, eb, threshold)?;
        Ok(Verification { comparison, a: ua, b: ub, model: ea.model.clone() })
    }

    fn pick<'a>(&self, img: &'a AnalyzedImage, sel: FaceSelection) -> Result<(&'a Face, UsedFace)> {
        if img.faces.is_empty() {
            return Err(Error::NoFace { path: img.path.clone(), score_threshold: self.config.detector_params.score_threshold });
        }
        let index = match sel {
            FaceSelection::Largest => 0,
            FaceSelection::Index(i) => i,
        };
        let face = img
            .faces
            .get(index)
            .ok_or(Error::FaceIndex { path: img.path.clone(), index, count: img.faces.len() })?;
        Ok((
            face,
            UsedFace {
                path: img.path.clone(),
                face: index,
                faces_in_image: img.faces.len(),
                bbox: face.detection.bbox,
                score: face.detection.score,
            },
        ))
    }
}
