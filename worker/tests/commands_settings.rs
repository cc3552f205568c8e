//! The `commands:` section of `.capstan.yaml`: overrides applied, bad values refused by name.
#![allow(clippy::unwrap_used)]

use capstan_worker::commands::{
    CommandKind, CommandSettings, Permission, SettingsError, parse_comment,
};

fn settings(yaml: &str) -> Result<CommandSettings, String> {
    yaml_serde::from_str(yaml).map_err(|e| e.to_string())
}

fn names(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn overrides_and_prefix_are_applied() {
    let s = settings("prefix: /cap\nbare: true\npermissions:\n  promote: admin\n  hold: write\n")
        .unwrap();
    let c = s
        .into_config(".capstan.yaml", names(&["production"]), names(&["web"]))
        .unwrap();
    assert_eq!(c.prefix, "/cap");
    assert!(c.bare);
    assert_eq!(
        c.required_permission(CommandKind::Promote),
        Permission::Admin
    );
    assert_eq!(c.required_permission(CommandKind::Hold), Permission::Write);
    assert_eq!(
        c.required_permission(CommandKind::Unhold),
        Permission::Maintain
    );
    assert_eq!(parse_comment("/cap promote production web", &c).len(), 1);
}

#[test]
fn empty_section_gives_the_defaults() {
    let c = CommandSettings::default()
        .into_config(".capstan.yaml", names(&[]), names(&[]))
        .unwrap();
    assert_eq!(c.prefix, "/capstan");
    assert!(!c.bare);
    for k in CommandKind::ALL {
        assert_eq!(c.required_permission(k), k.default_permission());
    }
}

#[test]
fn bad_values_are_refused_with_the_key() {
    let err = |yaml: &str| {
        settings(yaml)
            .unwrap()
            .into_config(".capstan.yaml", names(&[]), names(&[]))
            .unwrap_err()
    };
    let e = err("permissions:\n  deploy: write\n");
    assert!(matches!(e, SettingsError::UnknownCommand { .. }));
    assert!(e.to_string().contains("allowed: help, diff"), "{e}");
    let e = err("permissions:\n  promote: owner\n");
    assert!(
        e.to_string()
            .contains("commands.permissions.promote is `owner`"),
        "{e}"
    );
    assert!(matches!(
        err("permissions:\n  diff: none\n"),
        SettingsError::BadPermission { .. }
    ));
    for p in ["capstan", "/", "/cap stan", "/cаpstan", "/../x", "//x"] {
        let e = err(&format!("prefix: \"{p}\"\n"));
        assert!(matches!(e, SettingsError::BadPrefix { .. }), "{p}");
        assert!(
            e.to_string().starts_with(".capstan.yaml: commands.prefix"),
            "{e}"
        );
    }
    assert!(
        settings("colour: blue\n").is_err(),
        "unknown keys are refused"
    );
}
