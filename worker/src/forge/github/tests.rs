//! Unit tests of the GitHub forge's pure parts; the behaviour against a fake GitHub is in
//! `tests/tests/forge_github.rs`.
#![allow(clippy::unwrap_used)]

use super::*;
use http_body_util::BodyExt;

/// `next` as octocrab's `Page` reads it from a `Link` header (the parser the client uses).
async fn next_of(link: &str) -> Option<String> {
    let resp = http::Response::builder()
        .header(http::header::LINK, link)
        .body(
            http_body_util::Full::new(Bytes::from_static(b"[]"))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let page: Page<u64> = Page::from_response(resp).await.unwrap();
    page.next.map(|u| u.to_string())
}

#[tokio::test]
async fn next_link_is_found_among_the_others() {
    assert_eq!(
        next_of("<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=3>; rel=\"next\", <https://api.github.com/x?page=9>; rel=\"last\"").await.as_deref(),
        Some("https://api.github.com/x?page=3")
    );
    assert_eq!(
        next_of("<https://api.github.com/x?page=1>; rel=\"first\"").await,
        None
    );
}

#[test]
fn next_links_are_followed_on_the_api_host_only() {
    let forge = GitHubForge::new(GitHubConfig::new(
        "https://ghe.example/api/v3".parse().unwrap(),
        GitHubAuth::Token("t".into()),
    ))
    .unwrap();
    let uri = |s: &str| s.parse::<Uri>().unwrap();
    assert_eq!(
        forge
            .same_host("/x", "a/b", &uri("https://ghe.example/api/v3/x?page=2"))
            .unwrap(),
        "/api/v3/x?page=2"
    );
    for elsewhere in [
        "https://evil.example/api/v3/x?page=2",
        "http://ghe.example/api/v3/x?page=2",
        "https://ghe.example:8443/api/v3/x?page=2",
    ] {
        assert!(
            forge.same_host("/x", "a/b", &uri(elsewhere)).is_err(),
            "{elsewhere}"
        );
    }
}

#[test]
fn settings_refusals_name_the_setting() {
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a std::path::Path>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (None, None, None, "no GitHub credentials"),
        (Some("t"), Some("1"), None, "choose one"),
        (None, Some("abc"), None, "not a number"),
        (None, Some("12"), None, "CAPSTAN_GITHUB_APP_KEY_FILE is not"),
        (
            None,
            Some("12"),
            Some(std::path::Path::new("/nonexistent/key.pem")),
            "/nonexistent/key.pem",
        ),
        (Some("  "), None, None, "CAPSTAN_GITHUB_TOKEN is empty"),
    ];
    for (token, app, key, want) in cases {
        let err = GitHubAuth::from_settings(token, app, key).unwrap_err();
        assert!(err.to_string().contains(want), "{err} lacks {want}");
    }
    assert!(matches!(
        GitHubAuth::from_settings(Some(&"t".repeat(120)), None, None).unwrap(),
        GitHubAuth::Token(t) if t.len() == 120
    ));
}

#[test]
fn api_url_defaults_to_github_and_refuses_odd_urls() {
    assert_eq!(
        api_url_from_setting(None).unwrap().as_str(),
        "https://api.github.com/"
    );
    assert_eq!(
        api_url_from_setting(Some("https://ghe.example/api/v3"))
            .unwrap()
            .path(),
        "/api/v3"
    );
    for bad in [
        "ftp://ghe.example",
        "not a url",
        "https://user:pw@ghe.example/api/v3",
        "https://ghe.example/api?x=1",
    ] {
        assert!(api_url_from_setting(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn hostile_names_are_refused() {
    for repo in ["..", "a/..", "a/b/c", "a b/c", "/b", "a/"] {
        assert!(owner_of(repo).is_err(), "{repo}");
    }
    assert_eq!(owner_of("acme/gitops.io").unwrap(), "acme");
    assert!(valid_login("capstan[bot]"));
    assert!(!valid_login("../x"));
    assert!(valid_sha(&"a".repeat(40)));
    assert!(!valid_sha("HEAD"));
}
