//! The page shell shared by every dashboard page: navigation, theme, status words and the small
//! inline script that shows times in the viewer's zone. Pages are `maud` templates: everything
//! interpolated is escaped unless wrapped in `PreEscaped`, which only the constant style and
//! script below use.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::config::DashboardConfig;

/// `text` escaped as the templates escape it (tests look for page text this way).
pub fn esc(text: &str) -> String {
    html! { (text) }.into_string()
}

/// A `<time>` element: UTC as text (readable without scripts), converted to the viewer's zone by
/// the page script.
pub fn time(ms: i64) -> Markup {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return html! { "—" };
    };
    let iso = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    html! { time datetime=(iso) { (shown) } }
}

/// `1.2 s`, `340 ms`, `3 min 4 s`.
pub fn duration(ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// The tone of a status word; the word itself always carries the meaning, colour only helps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    Neutral,
}

/// A status badge: an icon-like symbol and the word, so it reads without colour.
pub fn badge(word: &str, tone: Tone) -> Markup {
    let (class, symbol) = match tone {
        Tone::Good => ("good", "✓"),
        Tone::Bad => ("bad", "✗"),
        Tone::Warn => ("warn", "!"),
        Tone::Neutral => ("neutral", "•"),
    };
    html! { span class={ "badge " (class) } { span aria-hidden="true" { (symbol) } " " (word) } }
}

/// Navigation entries: path and label.
const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/apps", "Environments"),
    ("/promotions", "Promotions"),
    ("/fidelity", "Fidelity"),
    ("/services", "Services"),
    ("/cluster", "Cluster"),
    ("/api/overview", "JSON"),
];

/// A validated CSS colour (`#rgb`/`#rrggbb`); anything else falls back to the default, so the
/// config cannot inject CSS.
fn colour(c: Option<&str>) -> &str {
    match c {
        Some(c)
            if c.starts_with('#')
                && matches!(c.len(), 4 | 7)
                && c[1..].chars().all(|h| h.is_ascii_hexdigit()) =>
        {
            c
        }
        _ => "#2f6fdf",
    }
}

const STYLE: &str = r#"
:root{--bg:#fff;--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--card:#f6f8fa;--good:#1a7f37;--bad:#cf222e;--warn:#9a6700}
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--card:#151b23;--good:#3fb950;--bad:#f85149;--warn:#d29922}}
:root[data-theme=dark]{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--card:#151b23;--good:#3fb950;--bad:#f85149;--warn:#d29922}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--primary)}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid var(--primary);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px 8px;z-index:9}
header{background:var(--primary);color:#fff;padding:0 16px;display:flex;flex-wrap:wrap;align-items:center;gap:4px 20px}
header .brand{font-weight:700;font-size:17px;padding:10px 0;display:flex;align-items:center;gap:8px;color:#fff;text-decoration:none}
header .brand img{height:24px}
header nav{display:flex;flex-wrap:wrap;gap:2px}
header nav a{color:#fff;text-decoration:none;padding:12px 10px;border-bottom:3px solid transparent}
header nav a[aria-current=page]{border-bottom-color:#fff;font-weight:600}
header .user{margin-left:auto;font-size:13px;opacity:.9}
main{padding:16px;max-width:1400px;margin:0 auto}
h1{font-size:22px;margin:8px 0 16px}h2{font-size:18px;margin:24px 0 8px}h3{font-size:16px;margin:16px 0 6px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px;margin-bottom:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 14px}
.card .n{font-size:24px;font-weight:700}.card .l{color:var(--muted);font-size:13px}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--card);font-weight:600;white-space:nowrap}
tr:last-child td{border-bottom:0}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
pre{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto;margin:6px 0}
.diff .add{color:var(--good)}.diff .del{color:var(--bad)}.diff .hunk{color:var(--muted)}
.badge{display:inline-block;padding:0 8px;border-radius:10px;border:1px solid currentColor;font-size:13px;white-space:nowrap}
.badge.good{color:var(--good)}.badge.bad{color:var(--bad)}.badge.warn{color:var(--warn)}.badge.neutral{color:var(--muted)}
.muted{color:var(--muted)}
.notice{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--warn);padding:10px 14px;border-radius:6px;margin:8px 0}
section.app{border:1px solid var(--line);border-radius:6px;padding:4px 14px 10px;margin:16px 0}
section.app:target{border-color:var(--primary);box-shadow:0 0 0 2px var(--primary)}
form.filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:end;margin-bottom:12px}
form.filters label{display:flex;flex-direction:column;font-size:13px;color:var(--muted)}
input,select,button{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
button{background:var(--primary);color:#fff;border-color:var(--primary);cursor:pointer}
ul.links{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}
ul.links li{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 14px}
@media (max-width:640px){main{padding:8px}th,td{padding:4px 6px}header .user{margin-left:0}}
"#;

/// Converts every `<time datetime>` to the viewer's local zone; the UTC text stays as a tooltip.
const TIME_SCRIPT: &str = r#"
document.querySelectorAll("time[datetime]").forEach(function(t){
  var d=new Date(t.getAttribute("datetime"));
  if(!isNaN(d)){t.title=t.textContent;t.textContent=d.toLocaleString(undefined,{dateStyle:"medium",timeStyle:"short"});}
});
"#;

/// A complete page. `current` is the nav path to highlight; `user` the signed-in identity, if any.
pub fn page(
    cfg: &DashboardConfig,
    title: &str,
    current: &str,
    user: Option<&str>,
    body: Markup,
) -> Markup {
    let theme = &cfg.customizations.theme;
    let site = theme.title.as_deref().unwrap_or(&cfg.name);
    // `auto` (or anything else) follows the viewer's preference.
    let mode = match theme.mode.as_deref() {
        Some("dark") => Some("dark"),
        Some("light") => Some("light"),
        _ => None,
    };
    let logo = theme.logo.as_deref().filter(|l| is_http_url(l));
    html! {
        (DOCTYPE)
        html lang="en" data-theme=[mode] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · " (site) }
                link rel="icon" href="data:,";
                // The colour is validated by `colour`, the rest is a constant.
                style { ":root{--primary:" (colour(theme.primary_color.as_deref())) "}" (PreEscaped(STYLE)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/" {
                        @if let Some(logo) = logo { img src=(logo) alt=""; }
                        (site)
                    }
                    nav aria-label="Main" {
                        @for (path, label) in NAV {
                            a href=(path) aria-current=[(path == current).then_some("page")] { (label) }
                        }
                    }
                    @if let Some(u) = user {
                        span.user { "Signed in as " (u) }
                    }
                }
                main #main tabindex="-1" { (body) }
                script { (PreEscaped(TIME_SCRIPT)) }
            }
        }
    }
}

/// Only http(s) URLs become links or images (no `javascript:`).
pub fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// A table with a header row; `rows` are the cells of each row.
pub fn table(headers: &[&str], rows: &[Markup], empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.muted { (empty) }
        } @else {
            div.table-wrap { table {
                thead { tr { @for h in headers { th scope="col" { (h) } } } }
                tbody { @for r in rows { tr { (r) } } }
            } }
        }
    }
}

/// A notice box (e.g. "Kubernetes is not reachable").
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_cannot_inject_markup() {
        let mut cfg = DashboardConfig::default();
        cfg.customizations.theme.title = Some("<script>x()</script>".into());
        let html = page(&cfg, "a\"b", "/", Some("<i>"), html! { "&" }).into_string();
        assert!(!html.contains("<script>x()"), "{html}");
        assert!(html.contains("&lt;script&gt;x()&lt;/script&gt;</a>"));
        assert!(html.contains("<title>a&quot;b · "));
        assert!(html.contains("Signed in as &lt;i&gt;"));
        assert!(html.contains("<main id=\"main\" tabindex=\"-1\">&amp;</main>"));
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href='x'&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn theme_colour_cannot_inject_css() {
        assert_eq!(colour(Some("#abc")), "#abc");
        assert_eq!(colour(Some("red;}body{display:none")), "#2f6fdf");
    }

    #[test]
    fn theme_mode_and_title_come_from_the_config() {
        let mut cfg = DashboardConfig::default();
        let auto = page(&cfg, "T", "/", None, html! {}).into_string();
        assert!(auto.contains("<html lang=\"en\"><head>") && auto.contains("Capstan</a>"));
        cfg.customizations.theme.mode = Some("dark".into());
        cfg.customizations.theme.title = Some("Homelab <b>".into());
        let dark = page(&cfg, "T", "/", Some("alice"), html! {}).into_string();
        assert!(dark.contains("<html lang=\"en\" data-theme=\"dark\">"));
        assert!(dark.contains("Homelab &lt;b&gt;</a>"));
        assert!(dark.contains("Signed in as alice"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Some(340)), "340 ms");
        assert_eq!(duration(Some(1234)), "1.2 s");
        assert_eq!(duration(Some(125_000)), "2 min 5 s");
        assert_eq!(duration(None), "—");
    }
}
