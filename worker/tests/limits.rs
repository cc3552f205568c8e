//! Worker exhaustion (issue 13, finding 10): what any pull-request author can make a worker do is
//! bounded, and a bound that is hit shows in the report as "not checked: limit … reached" with a
//! failing check, never as a silent pass. (The render cache's bounds are unit-tested in
//! `render/cache.rs`; the job deadline end to end in `tests/tests/adversarial_pipeline.rs`.)
#![allow(clippy::unwrap_used)]

mod report_support;

use std::time::Duration;

use capstan_worker::apps::{DiscoveryConfig, discover};
use capstan_worker::diff::{DiffLimits, ObjectChangeKind, diff_objects_within};
use capstan_worker::objects::K8sObject;
use capstan_worker::repo_fs::MemFs;
use capstan_worker::report::{
    COMMENT_LIMIT, Conclusion, check_run, render_comment, render_comment_capped,
};
use report_support::{app, change, id, report};
use serde_json::json;

const URL: &str = "https://github.com/acme/gitops.git";

fn cfg(max: usize) -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec![URL.into()],
        max_generated_apps: max,
        ..DiscoveryConfig::default()
    }
}

/// An ApplicationSet whose generators produce `elements` list entries per child, combined by a
/// matrix of `children` lists (or a plain list when `children` is 1).
fn appset(elements: usize, children: usize) -> String {
    let list = |tag: usize| {
        let items: Vec<String> = (0..elements)
            .map(|i| format!("{{\"n{tag}\": \"v{i}\"}}"))
            .collect();
        format!("{{\"list\": {{\"elements\": [{}]}}}}", items.join(", "))
    };
    let generator = if children == 1 {
        list(0)
    } else {
        let kids: Vec<String> = (0..children).map(list).collect();
        format!("{{\"matrix\": {{\"generators\": [{}]}}}}", kids.join(", "))
    };
    let names: Vec<String> = (0..children).map(|c| format!("{{{{n{c}}}}}")).collect();
    format!(
        "{{\"apiVersion\": \"argoproj.io/v1alpha1\", \"kind\": \"ApplicationSet\", \
         \"metadata\": {{\"name\": \"fan\"}}, \"spec\": {{\"generators\": [{generator}], \
         \"template\": {{\"metadata\": {{\"name\": \"app-{}\"}}, \"spec\": {{\"project\": \"default\", \
         \"source\": {{\"repoURL\": \"{URL}\", \"path\": \"apps/x\"}}, \
         \"destination\": {{\"namespace\": \"x\"}}}}}}}}}}",
        names.join("-")
    )
}

#[test]
fn an_application_set_over_the_bound_generates_nothing_and_says_so() {
    // 100 × 100 × 100: a million apps from a few kilobytes of YAML.
    let fs = MemFs::new()
        .with("argocd/fan.yaml", appset(100, 3))
        .with("apps/x/kustomization.yaml", "resources: []\n");
    let d = discover(&fs, &cfg(1_000));
    assert!(d.apps.is_empty(), "{} apps", d.apps.len());
    assert_eq!(d.limits.len(), 1, "{:?}", d.limits);
    assert!(
        d.limits[0].starts_with("not checked: limit appset_max_apps (1000) reached")
            && d.limits[0].contains("1000000 apps"),
        "{}",
        d.limits[0]
    );
    // A plain list over the bound too.
    let fs = MemFs::new().with("argocd/fan.yaml", appset(30, 1));
    let d = discover(&fs, &cfg(20));
    assert!(d.apps.is_empty() && d.limits.len() == 1, "{:?}", d.limits);

    // Within the bound, every app is generated as before.
    let fs = MemFs::new().with("argocd/fan.yaml", appset(5, 2));
    let d = discover(&fs, &cfg(1_000));
    assert_eq!(d.apps.len(), 25);
    assert!(d.limits.is_empty());
}

fn config_map(name: &str, bytes: usize) -> K8sObject {
    K8sObject::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop"},
        "data": {"blob": "x".repeat(bytes)},
    }))
    .unwrap()
}

#[test]
fn diffs_over_the_size_or_time_bound_are_counted_but_not_checked() {
    let base = [config_map("small", 10), config_map("huge", 10)];
    let head = [config_map("small", 20), config_map("huge", 200_000)];
    let limits = DiffLimits {
        deadline: Duration::from_secs(60),
        max_object_bytes: 100_000,
    };
    let d = diff_objects_within("shop", &base, &head, &[], &limits);
    assert_eq!(
        d.count(ObjectChangeKind::Changed),
        2,
        "both changes are known"
    );
    let huge = d.changes.iter().find(|c| c.id.name == "huge").unwrap();
    let small = d.changes.iter().find(|c| c.id.name == "small").unwrap();
    assert!(huge.diff.is_empty() && !small.diff.is_empty());
    assert!(
        d.notes.iter().any(|n| n
            .starts_with("not checked: limit diff_max_object_bytes (100000) reached")
            && n.contains("ConfigMap shop/huge")),
        "{:?}",
        d.notes
    );

    // A deadline already passed: nothing gets a text diff, and the note counts them.
    let late = DiffLimits {
        deadline: Duration::ZERO,
        max_object_bytes: 100_000,
    };
    let d = diff_objects_within("shop", &base, &head, &[], &late);
    assert!(d.changes.iter().all(|c| c.diff.is_empty()));
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("not checked: limit diff_deadline_secs (0) reached")),
        "{:?}",
        d.notes
    );
}

#[test]
fn a_bound_hit_anywhere_fails_the_check_and_is_listed() {
    let mut r = report(vec![app(
        "shop",
        Some("staging"),
        vec![change(
            ObjectChangeKind::Changed,
            id("ConfigMap", "shop", "a"),
            "-a\n+b\n",
        )],
    )]);
    assert_eq!(check_run(&r).conclusion, Conclusion::Success);
    r.apps[0]
        .diff
        .notes
        .push(capstan_worker::limits::not_checked(
            "diff_deadline_secs",
            20,
            "no text diff for 3 more objects",
        ));
    let out = check_run(&r);
    assert_eq!(out.conclusion, Conclusion::Failure);
    assert!(
        out.summary
            .contains("not checked: limit diff\\_deadline\\_secs"),
        "{}",
        out.summary
    );
    let body = &render_comment(&r).parts[0].body;
    assert!(
        body.contains("not checked: limit diff\\_deadline\\_secs \\(20\\) reached"),
        "{body}"
    );
}

#[test]
fn the_comment_is_capped_in_parts_and_the_rest_is_left_to_the_dashboard() {
    let apps = (0..40)
        .map(|i| {
            let changes = (0..8)
                .map(|o| {
                    let diff: String = (0..400).map(|l| format!("+line {l} of {o}\n")).collect();
                    change(
                        ObjectChangeKind::Added,
                        id("ConfigMap", "ns", &format!("cm-{i}-{o}")),
                        &diff,
                    )
                })
                .collect();
            app(&format!("app-{i:02}"), None, changes)
        })
        .collect();
    let mut r = report(apps);
    let uncapped = render_comment(&r).parts.len();
    assert!(uncapped > 3, "{uncapped} parts");
    let (capped, hit) = render_comment_capped(&mut r, 3, COMMENT_LIMIT);
    assert!(hit);
    assert_eq!(capped.parts.len(), 3);
    for p in &capped.parts {
        assert!(p.body.len() <= COMMENT_LIMIT, "{}", p.body.len());
        assert_eq!(p.total, 3);
    }
    assert!(
        capped.parts[0]
            .body
            .contains("comment\\_max\\_parts \\(3\\) reached")
    );
    assert!(capped.parts[2].body.contains("**Not shown**"));
    assert_eq!(check_run(&r).conclusion, Conclusion::Failure);

    // Within the cap nothing changes.
    let mut small = report(vec![app("shop", None, Vec::new())]);
    let (one, hit) = render_comment_capped(&mut small, 3, COMMENT_LIMIT);
    assert!(!hit && one.parts.len() == 1 && small.limits.is_empty());
}
