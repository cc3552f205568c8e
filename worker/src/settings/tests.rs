#![allow(clippy::unwrap_used)]
use super::*;
use crate::commands::Permission;

fn err(text: &str) -> SettingsError {
    RepoSettings::parse(text).unwrap_err()
}

#[test]
fn the_shipped_file_parses_with_every_section() {
    let s = RepoSettings::parse(include_str!("../../../.capstan.yaml")).unwrap();
    assert_eq!(s.version, 1);
    assert_eq!(s.default_branch.as_deref(), Some("main"));
    assert_eq!(s.environment_names(), vec!["staging", "production"]);
    assert_eq!(s.commands.prefix.as_deref(), Some("/capstan"));
    assert_eq!(s.promotion.rules[0].name, "podinfo-images");
    assert!(s.apps.contains_key("podinfo-*"));
}

#[test]
fn an_empty_or_absent_file_is_the_defaults() {
    for text in ["", "# only a comment\n", "---\n"] {
        let s = RepoSettings::parse(text).unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(s.render.verify, RenderVerify::Sample);
        assert_eq!(s.render.verify_share, 0.1);
        assert_eq!(s.render.not_checked, NotChecked::Neutral);
        assert_eq!(s.trust.cluster_checks, ClusterChecks::Trusted);
        assert_eq!(s.trust.min_permission, Permission::Write);
        assert!(s.policy.waivable.is_none());
    }
    let s = RepoSettings::parse("policy:\ncommands:\n").unwrap();
    assert!(s.commands.prefix.is_none());
}

#[test]
fn a_top_level_typo_names_key_line_and_suggestion() {
    let e = err("version: 1\nrepoURL: https://x/y.git\npromtion:\n  mode: direct\n");
    assert_eq!(e.path, "promtion");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.column.is_some(), "{e}");
    assert_eq!(e.suggestion.as_deref(), Some("promotion"));
    let shown = e.to_string();
    assert!(shown.starts_with(".capstan.yaml:3:"), "{shown}");
    assert!(shown.contains("did you mean `promotion`?"), "{shown}");
}

#[test]
fn a_nested_typo_names_the_full_path() {
    let e = err("render:\n  backend: native\n  verifyshare: 0.5\n");
    assert_eq!(e.path, "render.verifyshare", "{e}");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.suggestion.as_deref(), Some("verifyShare"));
    let e = err(
        "promotion:\n  rules:\n    - name: a\n      app: b\n      from: {environment: s, path: a}\n      to: {environment: p, path: b}\n      copy: [images]\n      conditons: {soak: 1m}\n",
    );
    assert_eq!(e.path, "promotion.rules[0].conditons", "{e}");
    assert_eq!(e.suggestion.as_deref(), Some("conditions"));
    assert_eq!(e.line, Some(8));
    let e = err("trust:\n  clusterChecks: evryone\n");
    assert_eq!(e.path, "trust.clusterChecks", "{e}");
    assert_eq!(e.suggestion.as_deref(), Some("everyone"));
}

#[test]
fn wrong_types_and_missing_names_are_explained() {
    let e = err("environments: staging\n");
    assert!(e.to_string().contains("environments must be a list"), "{e}");
    let e = err("environments:\n  - {overlay: x}\n");
    assert!(
        e.to_string().contains("environments[0] needs a name"),
        "{e}"
    );
    let e = err("environments:\n  - {name: s, argocdsync: true}\n");
    assert_eq!(e.suggestion.as_deref(), Some("argocdSync"), "{e}");
    let e = err("version: 2\n");
    assert!(e.to_string().contains("version"), "{e}");
    let e = err("render: {verifyShare: 1.5}\n");
    assert!(e.to_string().contains("render.verifyShare"), "{e}");
    let e = err("- a\n- b\n");
    assert!(e.to_string().contains("mapping"), "{e}");
    let e = err("a: 1\na: 2\n");
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn environments_accept_both_spellings() {
    let s = RepoSettings::parse(
        "environments:\n  - staging\n  - {name: production, protected: true}\n",
    )
    .unwrap();
    assert_eq!(s.environment_names(), vec!["staging", "production"]);
    assert!(s.environments[1].protected);
}

#[test]
fn new_keys_parse() {
    let s = RepoSettings::parse(
        "trust: {clusterChecks: never, minPermission: maintain}\nrender: {verify: always, verifyShare: 0.5, notChecked: failure}\npolicy: {waivable: [pss-host-path]}\n",
    )
    .unwrap();
    assert_eq!(s.trust.cluster_checks, ClusterChecks::Never);
    assert_eq!(s.trust.min_permission, Permission::Maintain);
    assert_eq!(s.render.verify, RenderVerify::Always);
    assert_eq!(s.render.not_checked, NotChecked::Failure);
    assert_eq!(s.policy.waivable, Some(vec!["pss-host-path".to_string()]));
}

#[test]
fn a_bare_off_is_the_word_off() {
    // YAML 1.1 readers take a bare `off` for false; `verify: off` must still mean Off.
    let s = RepoSettings::parse("render:\n  verify: off\n").unwrap();
    assert_eq!(s.render.verify, RenderVerify::Off);
}

const SCHEMA_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/capstan-yaml.schema.json"
);
const DOC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/capstan-yaml.md");

/// Regenerate with `CAPSTAN_UPDATE_SCHEMA=1 cargo test -p capstan-worker --lib settings::`.
#[test]
fn the_published_schema_is_generated_from_the_type() {
    let want = format!(
        "{}\n",
        serde_json::to_string_pretty(&json_schema()).unwrap()
    );
    if std::env::var_os("CAPSTAN_UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_FILE, &want).unwrap();
    }
    let have = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        have == want,
        "docs/capstan-yaml.schema.json is stale; regenerate it with CAPSTAN_UPDATE_SCHEMA=1 cargo test -p capstan-worker --lib settings::"
    );
    let shipped = include_str!("../../../.capstan.yaml");
    assert!(
        shipped.starts_with("# yaml-language-server: $schema="),
        "the shipped .capstan.yaml names its schema"
    );
}

/// Every key path of the schema: (section, path inside the section). Map keys (`apps.<name>`)
/// and list items (`rules[]`) are spelled as the docs spell them.
fn key_paths(schema: &serde_json::Value) -> Vec<(String, String)> {
    fn resolve<'a>(
        root: &'a serde_json::Value,
        mut s: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        while let Some(r) = s.get("$ref").and_then(|r| r.as_str()) {
            let name = r.trim_start_matches("#/$defs/");
            s = &root["$defs"][name];
        }
        s
    }
    fn walk(
        root: &serde_json::Value,
        s: &serde_json::Value,
        prefix: &str,
        section: &str,
        out: &mut Vec<(String, String)>,
    ) {
        let s = resolve(root, s);
        for sub in ["anyOf", "oneOf"] {
            if let Some(list) = s.get(sub).and_then(|l| l.as_array()) {
                for v in list {
                    walk(root, v, prefix, section, out);
                }
            }
        }
        if let Some(items) = s.get("items") {
            walk(root, items, &format!("{prefix}[]"), section, out);
        }
        if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let (sec, path) = if section.is_empty() {
                    (k.clone(), String::new())
                } else if prefix.is_empty() {
                    (section.to_string(), k.clone())
                } else {
                    (section.to_string(), format!("{prefix}.{k}"))
                };
                out.push((sec.clone(), path.clone()));
                walk(root, v, &path, &sec, out);
            }
        } else if let Some(add) = s.get("additionalProperties").filter(|a| a.is_object()) {
            // `apps.<name>.owners` is documented as `owners` in the `apps` section.
            walk(root, add, prefix, section, out);
        }
    }
    let mut out = Vec::new();
    walk(schema, schema, "", "", &mut out);
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_key_of_the_type_is_documented() {
    let doc = std::fs::read_to_string(DOC_FILE).unwrap();
    // The first cell of every table row, per `## ` section (`Top level` is the empty section).
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().trim_matches('`').to_string();
            if section == "Top level" {
                section.clear();
            }
        } else if let Some(cell) = line.strip_prefix("| ") {
            let first = cell.split(" | ").next().unwrap_or("").to_string();
            rows.push((section.clone(), first));
        }
    }
    let mut missing = Vec::new();
    for (sec, path) in key_paths(&json_schema()) {
        let full = if path.is_empty() {
            sec.clone()
        } else {
            format!("{sec}.{path}")
        };
        let leaf = path.rsplit(['.', ']']).next().unwrap_or(&path).to_string();
        let mentions = |cell: &str, key: &str| {
            cell.contains(&format!("`{key}`")) || cell.contains(&format!("`{key}."))
        };
        let found = rows.iter().any(|(s, cell)| {
            // Top-level table: `discovery.exclude` documents `discovery` and its key.
            (s.is_empty() && mentions(cell, &full))
                || (!path.is_empty()
                    && *s == sec
                    && (mentions(cell, &path)
                        || mentions(cell, &leaf)
                        || cell.contains(&format!(".{leaf}`"))
                        || cell.contains(&format!(".{leaf}."))))
        });
        if !found {
            missing.push(full);
        }
    }
    assert!(
        missing.is_empty(),
        "keys of RepoSettings missing from docs/capstan-yaml.md: {missing:?}"
    );
}

/// Every default the docs state as a literal (`sample`, `0.1`, `[]`) is the type's default:
/// writing the documented value explicitly must give the same settings as leaving the key out.
/// Keys whose default is computed from other values are named with the reason.
#[test]
fn every_documented_default_is_the_default() {
    const COMPUTED: &[(&str, &str)] = &[
        (
            "environments.overlay",
            "derived from the environment's name",
        ),
        ("apps.render", "inherits render.backend"),
        (
            "commands.prefix",
            "unset means the service's `command_prefix` setting, whose default the README table states",
        ),
    ];
    // What a key means once every layer is applied: the policy section over the shipped
    // defaults, promotion rules with the section's mode and trigger, the rest as parsed.
    fn effective(s: &RepoSettings) -> String {
        let mut rest = s.clone();
        rest.policy = PolicySection::default();
        rest.promotion = PromotionSettings::default();
        format!(
            "{rest:?}\n{:?}\n{:?}",
            crate::policy::config::PolicySettings::from_section(&s.policy),
            crate::promote::rules::Rules::from_settings(s)
        )
    }
    fn set(doc: &mut serde_json::Value, path: &[&str], value: serde_json::Value) {
        let mut at = doc;
        for (i, part) in path.iter().enumerate() {
            let (name, first) = match part.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (*part, false),
            };
            if i + 1 == path.len() && !first {
                at[name] = value;
                return;
            }
            if at.get(name).is_none() {
                at[name] = serde_json::json!({});
            }
            at = &mut at[name];
            if first {
                at = &mut at[0];
            }
        }
    }
    let doc = std::fs::read_to_string(DOC_FILE).unwrap();
    let mut section = String::new();
    let mut checked = Vec::new();
    let mut wrong = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().trim_matches('`').to_string();
            if section == "Top level" {
                section.clear();
            }
            continue;
        }
        let Some(row) = line.strip_prefix("| ") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
        let literal = |c: &str| {
            c.strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .filter(|c| !c.contains('`'))
                .map(str::to_string)
        };
        let (Some(key), Some(default)) = (
            cells.first().and_then(|c| literal(c)),
            cells.get(2).and_then(|c| literal(c)),
        ) else {
            continue;
        };
        let full = if section.is_empty() {
            key.clone()
        } else {
            format!("{section}.{key}")
        };
        if COMPUTED.iter().any(|(k, _)| *k == full) {
            continue;
        }
        // A container each section's rows live in, holding the one entry they describe.
        let (mut base, prefix): (serde_json::Value, Vec<&str>) = match section.as_str() {
            "environments" => (
                serde_json::json!({"environments": [{"name": "staging"}]}),
                vec!["environments[]"],
            ),
            "apps" => (
                serde_json::json!({"apps": {"web": {}}}),
                vec!["apps", "web"],
            ),
            "promotion" if key.starts_with("rules[]") => (
                serde_json::json!({
                    "environments": [{"name": "staging"}, {"name": "production"}],
                    "promotion": {"rules": [{
                        "name": "r", "app": "web", "copy": ["images"],
                        "from": {"environment": "staging", "path": "a/staging"},
                        "to": {"environment": "production", "path": "a/production"},
                    }]},
                }),
                vec!["promotion"],
            ),
            "" => (serde_json::json!({}), vec![]),
            s => (serde_json::json!({}), vec![s]),
        };
        let mut path = prefix.clone();
        path.extend(key.split('.'));
        let value = crate::yaml::parse_single(&default, "docs")
            .unwrap_or_else(|e| panic!("{full}: documented default `{default}` is not YAML: {e}"));
        let left_out = RepoSettings::parse(&base.to_string())
            .unwrap_or_else(|e| panic!("{full}: the base document is refused: {e}"));
        set(&mut base, &path, value);
        match RepoSettings::parse(&base.to_string()) {
            Ok(written) if effective(&written) == effective(&left_out) => {}
            Ok(_) => wrong.push(format!("{full}: `{default}` is not the default")),
            Err(e) => wrong.push(format!("{full}: `{default}` is refused: {e}")),
        }
        checked.push(full);
    }
    assert!(checked.len() >= 30, "only {checked:?} were checked");
    assert!(
        wrong.is_empty(),
        "docs/capstan-yaml.md disagrees with the code:\n{}",
        wrong.join("\n")
    );
}
