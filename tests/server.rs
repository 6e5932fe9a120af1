//! The HTTP service through a real HTTP client against servers on loopback ports: every route,
//! authentication, limits, errors, graceful shutdown, and the OpenAPI document against the real
//! answers.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer};
use faceprint::server::{self, AnalyzerSource, ApiKeyEntry, Scope, ServerConfig, ServerHandle};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";
const READ_KEY: &str = "test-read-key-0123456789abcdef";

/// One analyzer for every server of this test binary (two sessions per model, like `serve`).
fn analyzer() -> Arc<FaceAnalyzer> {
    static A: OnceLock<Arc<FaceAnalyzer>> = OnceLock::new();
    A.get_or_init(|| {
        Arc::new(
            FaceAnalyzer::load(AnalyzerConfig { workers: 2, ..Default::default() })
                .unwrap_or_else(|e| panic!("cannot load the default models: {e} (run `faceprint models install`)")),
        )
    })
    .clone()
}

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("server-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn keys() -> Vec<ApiKeyEntry> {
    vec![
        ApiKeyEntry { name: "admin".into(), scope: Scope::Admin, sha256: server::hash_key(ADMIN_KEY) },
        ApiKeyEntry { name: "kiosk".into(), scope: Scope::Read, sha256: server::hash_key(READ_KEY) },
    ]
}

struct Srv {
    handle: Option<ServerHandle>,
    base: String,
    client: Client,
}

impl Srv {
    fn start(mut cfg: ServerConfig) -> Srv {
        cfg.bind = "127.0.0.1:0".parse().unwrap();
        if cfg.gallery.is_none() {
            cfg.gallery = Some(scratch("gallery"));
            cfg.create_gallery = true;
        }
        let handle = server::start(cfg, AnalyzerSource::Loaded(analyzer()), false).expect("server starts");
        let base = format!("http://{}", handle.addr());
        let client = Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let s = Srv { handle: Some(handle), base, client };
        let t0 = Instant::now();
        while s.client.get(s.url("/readyz")).send().map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(t0.elapsed() < Duration::from_secs(60), "server not ready after 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }
    fn get(&self, p: &str, key: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(p));
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        r.send().expect("request")
    }
    fn post_json(&self, p: &str, key: Option<&str>, body: &Value) -> Response {
        let mut r = self.client.post(self.url(p)).json(body);
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        r.send().expect("request")
    }
    fn post_form(&self, p: &str, key: Option<&str>, form: Form) -> Response {
        let mut r = self.client.post(self.url(p)).multipart(form);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send().expect("request")
    }
    fn send(&self, method: reqwest::Method, p: &str, key: Option<&str>, body: Option<&Value>) -> Response {
        let mut r = self.client.request(method, self.url(p));
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        r.send().expect("request")
    }
}

fn file_part(path: &Path) -> Part {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    Part::bytes(std::fs::read(path).unwrap()).file_name(name)
}

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

/// Status and JSON body.
fn json_of(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {v}"))
}

/// The OpenAPI document with every object schema closed (`additionalProperties: false`), so an
/// answer with a field the document does not declare fails validation.
fn strict_doc(s: &Srv) -> Value {
    let (st, mut doc) = json_of(s.get("/openapi.json", None));
    assert_eq!(st, 200);
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (_, sch) in schemas.iter_mut() {
            if sch.get("properties").is_some() {
                sch["additionalProperties"] = json!(false);
            }
        }
    }
    doc
}

/// Validates `body` against the schema the document declares for `method path` answering `status`.
fn check_schema(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "/openapi.json has no {method} {path}");
    let schema = op["responses"][status.to_string()]["content"]["application/json"]["schema"].clone();
    assert!(schema.is_object(), "/openapi.json declares no JSON answer {status} for {method} {path}");
    let mut root = schema;
    root["components"] = doc["components"].clone();
    let v = jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("schema of {method} {path} {status} does not compile: {e}"));
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: the answer does not match /openapi.json: {errors:?}\n{body}");
}

fn yao() -> PathBuf {
    common::sample("yaoming.jpg")
}
fn t1() -> PathBuf {
    common::sample("t1.jpg")
}
fn players() -> PathBuf {
    common::sample("players.jpg")
}

#[test]
fn every_route_answers_as_its_openapi_schema_says() {
    let s = Srv::start(ServerConfig { api_keys: keys(), ..Default::default() });
    let doc = strict_doc(&s);
    let k = Some(ADMIN_KEY);

    // Service routes.
    let (st, v) = json_of(s.get("/healthz", None));
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    check_schema(&doc, "/healthz", "get", st, &v);
    let (st, v) = json_of(s.get("/readyz", None));
    assert_eq!(st, 200);
    assert_eq!(v["execution_provider"], "CPUExecutionProvider");
    assert!(v["recognizer"].as_str().unwrap().starts_with("w600k_mbf-"), "{v}");
    assert!(v["detector"].as_str().unwrap().starts_with("scrfd_500m_bnkps-"), "{v}");
    check_schema(&doc, "/readyz", "get", st, &v);

    // Detect: multipart and base64 JSON give the same faces.
    let (st, det) = json_of(s.post_form("/v1/detect", k, Form::new().part("image", file_part(&t1()))));
    assert_eq!(st, 200, "{det}");
    check_schema(&doc, "/v1/detect", "post", st, &det);
    assert_eq!(det["image"]["image"], "t1.jpg");
    let n = det["faces"].as_array().unwrap().len();
    assert!(n >= 5, "t1.jpg shows 6 people, found {n}");
    assert!(det["faces"][0].get("embedding").is_none());
    let (st, det2) = json_of(s.post_json("/v1/detect", k, &json!({"image": b64(&t1())})));
    assert_eq!(st, 200);
    assert_eq!(det2["faces"].as_array().unwrap().len(), n);
    assert_eq!(det2["faces"][0]["bbox"], det["faces"][0]["bbox"]);

    // Embed: unit vectors with the model id.
    let (st, emb) = json_of(s.post_form("/v1/embed", k, Form::new().part("image", file_part(&yao()))));
    assert_eq!(st, 200, "{emb}");
    check_schema(&doc, "/v1/embed", "post", st, &emb);
    let e: Vec<f64> = emb["faces"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(e.len(), 512);
    assert!((e.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-3);
    assert_eq!(emb["faces"][0]["model"], v["recognizer"]);

    // Verify: same photo → same, at the default operating point with its FAR; other person → different.
    let form = Form::new().part("a", file_part(&yao())).part("b", file_part(&yao()));
    let (st, ver) = json_of(s.post_form("/v1/verify", k, form));
    assert_eq!(st, 200, "{ver}");
    check_schema(&doc, "/v1/verify", "post", st, &ver);
    assert_eq!(ver["same"], true);
    assert!(ver["similarity"].as_f64().unwrap() > 0.99);
    assert_eq!(ver["operating_point"], "FAR=1e-3");
    assert!((ver["far"].as_f64().unwrap() - 1e-3).abs() < 2e-4, "{ver}");
    let (st, ver) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao()), "b": b64(&t1()), "far": 1e-2})));
    assert_eq!(st, 200, "{ver}");
    assert_eq!(ver["same"], false, "{ver}");
    assert_eq!(ver["operating_point"], "FAR=1e-2");
    let (st, ver) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao()), "b": b64(&t1()), "threshold": -1.0})));
    assert_eq!((st, &ver["same"], &ver["operating_point"]), (200, &json!(true), &json!("user")), "{ver}");

    // Gallery CRUD.
    let (st, id) = json_of(s.post_json("/v1/gallery/identities", k, &json!({"name": "Yao Ming", "metadata": {"team": "Rockets"}})));
    assert_eq!(st, 201, "{id}");
    check_schema(&doc, "/v1/gallery/identities", "post", st, &id);
    let yao_id = id["id"].as_i64().unwrap();
    let (st, dup) = json_of(s.post_json("/v1/gallery/identities", k, &json!({"name": "Yao Ming"})));
    assert_eq!((st, error_code(&dup)), (409, "conflict"));
    let (st, other) = json_of(s.post_json("/v1/gallery/identities", k, &json!({"name": "someone"})));
    assert_eq!(st, 201);
    let other_id = other["id"].as_i64().unwrap();

    let (st, enr) = json_of(s.post_form(&format!("/v1/gallery/identities/{yao_id}/faces"), k, Form::new().part("image", file_part(&yao()))));
    assert_eq!(st, 201, "{enr}");
    check_schema(&doc, "/v1/gallery/identities/{identity}/faces", "post", st, &enr);
    assert_eq!(enr["identity"], "Yao Ming");
    // A group photo needs a face choice.
    let (st, several) = json_of(s.post_form("/v1/gallery/identities/someone/faces", k, Form::new().part("image", file_part(&t1()))));
    assert_eq!((st, error_code(&several)), (422, "several_faces"), "{several}");
    let (st, enr2) = json_of(s.post_form("/v1/gallery/identities/someone/faces", k, Form::new().part("image", file_part(&t1())).text("largest", "true")));
    assert_eq!(st, 201, "{enr2}");

    let (st, list) = json_of(s.get("/v1/gallery/identities", k));
    assert_eq!(st, 200);
    check_schema(&doc, "/v1/gallery/identities", "get", st, &list);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (st, detail) = json_of(s.get(&format!("/v1/gallery/identities/{yao_id}"), Some(READ_KEY)));
    assert_eq!(st, 200, "{detail}");
    check_schema(&doc, "/v1/gallery/identities/{identity}", "get", st, &detail);
    assert_eq!(detail["face_list"].as_array().unwrap().len(), 1);
    assert_eq!(detail["identity"]["metadata"]["team"], "Rockets");

    // Identify: Yao in his portrait is a match; verify against the enrolled identity.
    let (st, idf) = json_of(s.post_form("/v1/identify", k, Form::new().part("image", file_part(&yao()))));
    assert_eq!(st, 200, "{idf}");
    check_schema(&doc, "/v1/identify", "post", st, &idf);
    assert_eq!(idf["faces"][0]["decision"], "match", "{idf}");
    assert_eq!(idf["faces"][0]["matches"][0]["identity"], "Yao Ming");
    // Default open-set operating point: FPIR 1 % for a gallery of 2 identities (mean templates).
    assert_eq!(idf["operating_point"], "FPIR≤1e-2 at N=2 (FAR=5e-3)");
    // Exact search on request (form and JSON): the same answer at this size.
    let (st, ex) = json_of(s.post_form("/v1/identify", k, Form::new().part("image", file_part(&yao())).text("exact", "true")));
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["faces"][0]["matches"], idf["faces"][0]["matches"], "{ex}");
    let (st, ex) = json_of(s.post_json("/v1/identify", k, &json!({"image": b64(&yao()), "exact": true, "scoring": "max"})));
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["faces"][0]["matches"][0]["identity"], "Yao Ming", "{ex}");
    let (st, vi) = json_of(s.post_form("/v1/verify", k, Form::new().part("a", file_part(&yao())).text("identity", yao_id.to_string())));
    assert_eq!(st, 200, "{vi}");
    check_schema(&doc, "/v1/verify", "post", st, &vi);
    assert_eq!(vi["same"], true);
    assert_eq!(vi["b"]["path"], format!("gallery:{yao_id}"));
    let (st, vi) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao()), "identity": "nobody"})));
    assert_eq!((st, error_code(&vi)), (404, "not_found"));
    check_schema(&doc, "/v1/verify", "post", st, &vi);

    // Rename, merge, remove a face, remove an identity.
    let (st, rn) = json_of(s.send(reqwest::Method::PATCH, &format!("/v1/gallery/identities/{other_id}"), k, Some(&json!({"name": "Someone Else"}))));
    assert_eq!(st, 200, "{rn}");
    check_schema(&doc, "/v1/gallery/identities/{identity}", "patch", st, &rn);
    assert_eq!(rn["name"], "Someone Else");
    let (st, extra) = json_of(s.post_json("/v1/gallery/identities", k, &json!({"name": "Yao duplicate"})));
    assert_eq!(st, 201);
    // The same face again: a no-op under its identity, refused under another one.
    let (st, again) = json_of(s.post_form(&format!("/v1/gallery/identities/{yao_id}/faces"), k, Form::new().part("image", file_part(&yao()))));
    assert_eq!(st, 200, "{again}");
    check_schema(&doc, "/v1/gallery/identities/{identity}/faces", "post", st, &again);
    assert_eq!((again["already_enrolled"].as_bool(), again["face_id"].as_i64()), (Some(true), enr["face_id"].as_i64()));
    let (st, dup) = json_of(s.post_form("/v1/gallery/identities/Yao duplicate/faces", k, Form::new().part("image", file_part(&yao()))));
    assert_eq!((st, error_code(&dup)), (409, "duplicate_face"), "{dup}");
    check_schema(&doc, "/v1/gallery/identities/{identity}/faces", "post", st, &dup);
    assert!(dup["error"]["message"].as_str().unwrap().contains("Yao Ming"), "{dup}");
    let (st, other) = json_of(s.post_form("/v1/gallery/identities/Yao duplicate/faces", k, Form::new().part("image", file_part(&players())).text("largest", "true")));
    assert_eq!(st, 201, "{other}");
    assert_eq!(other["already_enrolled"], false);
    let (st, merged) = json_of(s.post_json("/v1/gallery/merge", k, &json!({"from": extra["id"], "into": "Yao Ming"})));
    assert_eq!(st, 200, "{merged}");
    check_schema(&doc, "/v1/gallery/merge", "post", st, &merged);
    assert_eq!(merged["faces"], 2);
    let (st, rf) = json_of(s.send(reqwest::Method::DELETE, &format!("/v1/gallery/faces/{}", enr["face_id"]), k, None));
    assert_eq!(st, 200, "{rf}");
    check_schema(&doc, "/v1/gallery/faces/{face}", "delete", st, &rf);
    let (st, rf) = json_of(s.send(reqwest::Method::DELETE, &format!("/v1/gallery/faces/{}", enr["face_id"]), k, None));
    assert_eq!((st, error_code(&rf)), (404, "not_found"));
    let (st, ri) = json_of(s.send(reqwest::Method::DELETE, "/v1/gallery/identities/Someone Else", k, None));
    assert_eq!(st, 200, "{ri}");
    check_schema(&doc, "/v1/gallery/identities/{identity}", "delete", st, &ri);
    assert_eq!(ri["removed_faces"].as_array().unwrap().len(), 1);

    // Bad input: a clear 4xx naming the problem.
    let (st, bad) = json_of(s.post_form("/v1/detect", k, Form::new().part("image", Part::bytes(b"not an image at all".to_vec()).file_name("notes.txt"))));
    assert_eq!((st, error_code(&bad)), (422, "invalid_image"));
    check_schema(&doc, "/v1/detect", "post", st, &bad);
    let msg = bad["error"]["message"].as_str().unwrap();
    assert!(msg.contains("notes.txt") && msg.contains("not a supported image format"), "{msg}");
    let (st, bad) = json_of(s.post_json("/v1/detect", k, &json!({"image": "%%% not base64"})));
    assert_eq!((st, error_code(&bad)), (400, "bad_request"), "{bad}");
    // Two images where one is expected: refused, not answered for one of them.
    let (st, bad) = json_of(s.post_form("/v1/detect", k, Form::new().part("image", file_part(&yao())).part("image", file_part(&t1()))));
    assert_eq!((st, error_code(&bad)), (400, "bad_request"), "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("more than once"), "{bad}");
    let (st, bad) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao())})));
    assert_eq!((st, error_code(&bad)), (400, "bad_request"), "{bad}");
    let (st, bad) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao()), "b": b64(&yao()), "far": 1e-7})));
    assert_eq!((st, error_code(&bad)), (400, "no_operating_point"), "{bad}");
    let (st, bad) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao()), "b": b64(&yao()), "far": 1e-3, "threshold": 0.3})));
    assert_eq!((st, error_code(&bad)), (400, "invalid_parameter"), "{bad}");
    let (st, bad) = json_of(s.post_json("/v1/verify", k, &json!({"a": b64(&yao()), "b": b64(&yao()), "face_b": 3})));
    assert_eq!((st, error_code(&bad)), (422, "face_index"), "{bad}");
    let (st, bad) = json_of(s.post_json("/v1/detect", k, &json!({"image": b64(&yao()), "colour": "red"})));
    assert_eq!((st, error_code(&bad)), (400, "invalid_parameter"), "{bad}");
    let (st, bad) = json_of(s.client.post(s.url("/v1/detect")).header("X-API-Key", ADMIN_KEY).body("x").send().unwrap());
    assert_eq!((st, error_code(&bad)), (415, "unsupported_media_type"));
    let (st, bad) = json_of(s.get("/v1/nothing-here", k));
    assert_eq!((st, error_code(&bad)), (404, "not_found"));

    // CORS is off by default: no allow-origin header for a foreign origin.
    let r = s.client.get(s.url("/healthz")).header("Origin", "https://elsewhere.example").send().unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Metrics count the requests per route and the recogniser batches.
    let m = s.get("/metrics", None).text().unwrap();
    assert!(m.contains("faceprint_http_requests_total{method=\"POST\",route=\"/v1/verify\",status=\"200\"}"), "{m}");
    assert!(m.contains("faceprint_http_request_duration_seconds_bucket{route=\"/v1/detect\""));
    assert!(m.contains("faceprint_embed_batch_size_count"));
    assert!(m.contains("faceprint_inference_queue_depth 0"));
    assert!(m.contains("faceprint_embed_queue_depth 0"));
}

#[test]
fn lfw_pair_verifies_as_the_same_person() {
    let Some(data) = common::shared_data("lfw_pair_verifies_as_the_same_person") else { return };
    let dir = data.join("lfw/lfw_funneled/Aaron_Peirsol");
    let s = Srv::start(ServerConfig::default());
    let form = Form::new().part("a", file_part(&dir.join("Aaron_Peirsol_0001.jpg"))).part("b", file_part(&dir.join("Aaron_Peirsol_0003.jpg")));
    let (st, v) = json_of(s.post_form("/v1/verify", None, form));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["same"], true, "{v}");
    let form = Form::new().part("a", file_part(&dir.join("Aaron_Peirsol_0001.jpg"))).part("b", file_part(&data.join("lfw/lfw_funneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")));
    let (st, v) = json_of(s.post_form("/v1/verify", None, form));
    assert_eq!((st, &v["same"]), (200, &json!(false)), "{v}");
}

#[test]
fn api_keys_are_required_and_scoped() {
    let s = Srv::start(ServerConfig { api_keys: keys(), ..Default::default() });
    // Health, readiness, metrics and the document are open; /v1 needs a key.
    assert_eq!(s.get("/healthz", None).status().as_u16(), 200);
    let (st, v) = json_of(s.get("/v1/gallery/identities", None));
    assert_eq!((st, error_code(&v)), (401, "unauthorized"));
    let (st, v) = json_of(s.post_form("/v1/detect", None, Form::new().part("image", file_part(&yao()))));
    assert_eq!((st, error_code(&v)), (401, "unauthorized"));
    let (st, v) = json_of(s.get("/v1/gallery/identities", Some("wrong-key")));
    assert_eq!((st, error_code(&v)), (401, "invalid_api_key"));
    // The read-only key reads and infers but cannot write the gallery.
    let (st, _) = json_of(s.get("/v1/gallery/identities", Some(READ_KEY)));
    assert_eq!(st, 200);
    // The Authorization scheme is case-insensitive.
    let r = s.client.get(s.url("/v1/gallery/identities")).header("Authorization", format!("bearer {READ_KEY}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (st, _) = json_of(s.post_form("/v1/detect", Some(READ_KEY), Form::new().part("image", file_part(&yao()))));
    assert_eq!(st, 200);
    let (st, v) = json_of(s.post_json("/v1/gallery/identities", Some(READ_KEY), &json!({"name": "intruder"})));
    assert_eq!((st, error_code(&v)), (403, "forbidden"));
    let (st, v) = json_of(s.post_form("/v1/gallery/identities/1/faces", Some(READ_KEY), Form::new().part("image", file_part(&players()))));
    assert_eq!((st, error_code(&v)), (403, "forbidden"), "{v}");
    let (st, v) = json_of(s.send(reqwest::Method::DELETE, "/v1/gallery/faces/1", Some(READ_KEY), None));
    assert_eq!((st, error_code(&v)), (403, "forbidden"));
    let (st, list) = json_of(s.get("/v1/gallery/identities", Some(ADMIN_KEY)));
    assert_eq!((st, list), (200, json!([])), "nothing was written");
    let (st, _) = json_of(s.post_json("/v1/gallery/identities", Some(ADMIN_KEY), &json!({"name": "allowed"})));
    assert_eq!(st, 201);
    // Keys never appear in errors.
    let (_, v) = json_of(s.get("/v1/gallery/identities", Some("wrong-key")));
    assert!(!v.to_string().contains("wrong-key"));
}

#[test]
fn open_server_refuses_non_loopback_bind() {
    let cfg = ServerConfig { bind: "0.0.0.0:0".parse().unwrap(), ..Default::default() };
    assert!(matches!(cfg.validate(), Err(server::ServerError::Config(_))));
    let cfg = ServerConfig { bind: "0.0.0.0:0".parse().unwrap(), api_keys: keys(), ..Default::default() };
    assert!(cfg.validate().is_ok());
}

#[test]
fn body_and_pixel_limits() {
    let s = Srv::start(ServerConfig { max_body_bytes: 64 * 1024, max_pixels: 50_000, ..Default::default() });
    // t1.jpg is over 64 KiB: refused as a body, in either encoding.
    assert!(std::fs::metadata(t1()).unwrap().len() > 64 * 1024);
    let (st, v) = json_of(s.post_form("/v1/detect", None, Form::new().part("image", file_part(&t1()))));
    assert_eq!((st, error_code(&v)), (413, "body_too_large"), "{v}");
    let (st, v) = json_of(s.post_json("/v1/detect", None, &json!({"image": b64(&t1())})));
    assert_eq!((st, error_code(&v)), (413, "body_too_large"), "{v}");
    // A 122-byte PNG claiming 100,000 × 100,000 pixels: refused from its header.
    let bomb = common::synth::huge_png(100_000, 100_000);
    assert!(bomb.len() < 200);
    let (st, v) = json_of(s.post_form("/v1/detect", None, Form::new().part("image", Part::bytes(bomb).file_name("bomb.png"))));
    assert_eq!((st, error_code(&v)), (413, "image_too_large"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("bomb.png"), "{v}");
    // A real photo over the pixel limit (yaoming.jpg is 233 × 287 = 66,871 pixels) is refused too.
    let (st, v) = json_of(s.post_json("/v1/detect", None, &json!({"image": b64(&yao())})));
    assert_eq!((st, error_code(&v)), (413, "image_too_large"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("66871 pixels"), "{v}");
    let m = s.get("/metrics", None).text().unwrap();
    assert!(m.contains("faceprint_rejected_total{reason=\"body_too_large\"} 2"), "{m}");
    assert!(m.contains("faceprint_rejected_total{reason=\"image_too_large\"} 2"), "{m}");
}

#[test]
fn flood_past_the_concurrency_limit_gets_503_with_retry_after() {
    let s = Arc::new(Srv::start(ServerConfig { max_concurrent_inferences: 1, max_queue: 1, ..Default::default() }));
    let n = 10;
    let barrier = Arc::new(Barrier::new(n));
    let body = std::fs::read(players()).unwrap();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (s, barrier, body) = (s.clone(), barrier.clone(), body.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = s.post_form("/v1/detect", None, Form::new().part("image", Part::bytes(body).file_name("players.jpg")));
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                let (st, v) = json_of(r);
                (st, v, retry)
            })
        })
        .collect();
    let results: Vec<(u16, Value, Option<String>)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(ok >= 1, "{results:?}");
    assert!(!refused.is_empty(), "10 simultaneous requests with 1 slot and 1 queue place: some must be refused: {results:?}");
    assert_eq!(ok + refused.len(), n, "only 200 or 503: {results:?}");
    for (_, v, retry) in refused {
        assert_eq!(error_code(v), "overloaded");
        assert_eq!(retry.as_deref(), Some("1"));
    }
    let m = s.get("/metrics", None).text().unwrap();
    assert!(m.contains("faceprint_rejected_total{reason=\"overloaded\"}"), "{m}");
}

#[test]
fn request_timeout_gives_503_timeout() {
    // 50 ms: the upload over loopback takes about a millisecond, detecting the faces of two large
    // group photos takes hundreds.
    let s = Srv::start(ServerConfig { request_timeout_ms: 50, ..Default::default() });
    let r = s.post_form("/v1/verify", None, Form::new().part("a", file_part(&players())).part("b", file_part(&t1())));
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()).as_deref(), Some("1"));
    let (st, v) = json_of(r);
    assert_eq!((st, error_code(&v)), (503, "timeout"), "{v}");
}

#[test]
fn shutdown_finishes_in_flight_requests_and_keeps_gallery_writes() {
    let gallery = scratch("durable");
    let s = Srv::start(ServerConfig { gallery: Some(gallery.clone()), create_gallery: true, ..Default::default() });
    let (st, _) = json_of(s.post_json("/v1/gallery/identities", None, &json!({"name": "Yao Ming"})));
    assert_eq!(st, 201);
    let (st, _) = json_of(s.post_form("/v1/gallery/identities/Yao Ming/faces", None, Form::new().part("image", file_part(&yao()))));
    assert_eq!(st, 201);
    // A slow request (two large photos) in flight while the server is asked to stop.
    let (client, url) = (s.client.clone(), s.url("/v1/verify"));
    let inflight = std::thread::spawn(move || {
        let form = Form::new().part("a", file_part(&players())).part("b", file_part(&t1()));
        let r = client.post(url).multipart(form).send().expect("in-flight request answered");
        json_of(r)
    });
    std::thread::sleep(Duration::from_millis(150));
    let mut s = s;
    s.handle.take().unwrap().shutdown().expect("clean shutdown");
    let (st, v) = inflight.join().unwrap();
    assert_eq!(st, 200, "{v}");
    assert!(s.client.get(s.url("/healthz")).send().is_err(), "stopped");
    // A new server on the same gallery has the enrolled face.
    let s2 = Srv::start(ServerConfig { gallery: Some(gallery), ..Default::default() });
    let (st, d) = json_of(s2.get("/v1/gallery/identities/Yao Ming", None));
    assert_eq!(st, 200);
    assert_eq!(d["identity"]["faces"], 1);
}

#[test]
fn binary_serves_until_sigterm() {
    let gallery = scratch("bin");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faceprint"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1", "--log-format", "json", "--create-gallery", "--gallery"])
        .arg(&gallery)
        .env("FACEPRINT_MAX_QUEUE", "7")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("faceprint runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("a line on stderr").unwrap();
        if let Some(rest) = line.strip_prefix("faceprint serving on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let client = Client::new();
    let t0 = Instant::now();
    while client.get(format!("http://{addr}/readyz")).send().map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = client.post(format!("http://{addr}/v1/detect")).multipart(Form::new().part("image", file_part(&yao()))).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // SAFETY: sending a signal to the child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}: {rest:?}");
    let log = rest.join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    // Structured logs: one JSON object per line, with the request's route and status.
    let req: Value = rest.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["fields"]["route"] == "/v1/detect").expect("a request log line");
    assert_eq!(req["fields"]["status"], 200);
    // A gallery folder that is not there is refused before anything is served (exit 2).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_faceprint"))
        .args(["serve", "--bind", "127.0.0.1:0", "--gallery"])
        .arg(scratch("bin-missing").join("nowhere"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a faceprint gallery") && !err.contains("serving on"), "{err}");
}
