//! Promotions change the promoted values and not one byte more: comments, key order, quoting
//! (`"1.10"` stays a string), CRLF line endings and a missing final newline survive, on this
//! repository's real overlays and on files written to be awkward.
#![allow(clippy::unwrap_used)]

use capstan_tests::promote_world::{REPO, World};
use capstan_tests::repo_root;
use capstan_worker::promote::edit::{YamlDoc, YamlPath};
use capstan_worker::store::PromotionStatus;
use serde_json::json;

#[test]
fn every_real_overlay_round_trips_apart_from_the_tag() {
    let mut seen = 0;
    for app in std::fs::read_dir(repo_root().join("applications/workloads")).unwrap() {
        let overlays = app.unwrap().path().join("overlays");
        for env in std::fs::read_dir(&overlays).into_iter().flatten() {
            let path = env.unwrap().path().join("kustomization.yaml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let doc = YamlDoc::parse("k.yaml", &text).unwrap();
            let value = capstan_worker::yaml::parse_single(&text, "k.yaml").unwrap();
            for image in value["images"].as_array().into_iter().flatten() {
                let name = image["name"].as_str().unwrap();
                let old = image["newTag"].as_str().unwrap();
                let p = YamlPath::parse(&format!("images[name={name}].newTag")).unwrap();
                let out = doc.set(&p, Some(&json!("10.20.30"))).unwrap();
                assert_eq!(
                    out,
                    text.replacen(&format!("newTag: {old}"), "newTag: 10.20.30", 1),
                    "{}",
                    path.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 2, "the sample overlays list images");
}

const STAGING_K: &str = "apps/web/staging/kustomization.yaml";
const PROD_K: &str = "apps/web/production/kustomization.yaml";
const STAGING_V: &str = "apps/web/staging/values.yaml";
const PROD_V: &str = "apps/web/production/values.yaml";

fn kustomization(env: &str, tag: &str, digest: &str) -> String {
    format!(
        "# {env} overlay: CRLF endings, no final newline\r\napiVersion: kustomize.config.k8s.io/v1beta1\r\nkind: Kustomization\r\nresources: ['../base']   # flow list stays as is\r\nimages:\r\n  - name: ghcr.io/acme/web\r\n    newTag: \"{tag}\"   # quoted: 1.10 is not 1.1\r\n    digest: {digest}\r\nreplicas:\r\n  - name: web\r\n    count: 3"
    )
}

fn values(tag: &str, port: &str) -> String {
    format!(
        "# values for web\nimage:\n  pullPolicy: IfNotPresent\n  tag: '{tag}'  # single-quoted\nservice:\n  port: \"{port}\"\nfeature_flags: {{beta: true}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_files_are_byte_identical_apart_from_the_promoted_values() {
    let settings = "environments: [{name: staging}, {name: production}]
promotion:
  mode: direct
  rules:
    - name: web
      app: web
      from: {environment: staging, path: apps/web/staging}
      to: {environment: production, path: apps/web/production}
      copy:
        - images
        - field: {file: values.yaml, path: image.tag}
        - field: {file: values.yaml, path: service.port}
";
    let prod_k = kustomization("production", "1.9", "sha256:0000");
    let prod_v = values("2.0", "8080");
    let w = World::new(&[
        (".capstan.yaml", settings.as_bytes()),
        (
            STAGING_K,
            kustomization("staging", "1.9", "sha256:0000").as_bytes(),
        ),
        (PROD_K, prod_k.as_bytes()),
        (STAGING_V, values("2.0", "8080").as_bytes()),
        (PROD_V, prod_v.as_bytes()),
    ])
    .await;
    let start = w.tip("main").unwrap().to_string();
    let after = w
        .commit(
            "main",
            None,
            "staging: web 1.10",
            &[
                (
                    STAGING_K,
                    Some(kustomization("staging", "1.10", "sha256:1111").as_bytes()),
                ),
                (STAGING_V, Some(values("2.10", "8081").as_bytes())),
            ],
        )
        .to_string();
    let out = w
        .engine
        .on_push(&w.push_event(&start, &after))
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, PromotionStatus::Committed, "{:?}", out[0]);
    assert_eq!(
        String::from_utf8(w.file("main", PROD_K)).unwrap(),
        kustomization("production", "1.10", "sha256:1111")
    );
    assert_eq!(
        String::from_utf8(w.file("main", PROD_V)).unwrap(),
        values("2.10", "8081")
    );
    assert_eq!(
        out[0].summary,
        "images ghcr.io/acme/web: newTag 1.9 → 1.10; images ghcr.io/acme/web: digest sha256:0000 → sha256:1111; \
         values.yaml image.tag: 2.0 → 2.10; values.yaml service.port: 8080 → 8081"
    );
    let _ = REPO;
}
