//! Markdown safety for text that comes from the repository or the cluster (names, values, messages,
//! diffs). Everything Capstan puts into a comment or check run passes through one of these
//! functions, so nothing a pull request contains can close our markup, ping a person or team, forge
//! the sticky-comment marker, or sit at a line start where it reads as a slash-command.

/// Key of the hidden marker; neutralised wherever it appears in untrusted text.
pub(crate) const MARKER_KEY: &str = "capstan:report";

/// Zero-width joiner: invisible, but breaks `@name` mentions and the marker key.
const ZWJ: char = '\u{200D}';
/// Zero-width space put before a line-leading `/`, so the line no longer starts with a command.
const ZWSP: char = '\u{200B}';

/// Text safe to place inline in markdown (table cells, list items, paragraphs): one line, HTML
/// and markdown punctuation escaped, mentions and issue references broken, marker neutralised.
pub fn inline(text: &str) -> String {
    escape(text, true)
}

/// Text safe inside raw HTML (the `<summary>` line is part of an HTML block, where markdown
/// backslash escapes would show literally): entities only, plus the same neutralisations.
pub fn html_text(text: &str) -> String {
    escape(text, false)
}

fn escape(text: &str, markdown: bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' | '\n' | '\t' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '`' => out.push_str("&#96;"),
            '|' => out.push_str("&#124;"),
            '\\' | '*' | '_' | '[' | ']' | '~' | '!' | '(' | ')' if markdown => {
                out.push('\\');
                out.push(c);
            }
            // GitHub leaves markdown in an HTML block alone, but a renderer that does not (or a
            // block that ends early) would turn `[x](url)` into a link: entities make it inert
            // everywhere.
            '[' => out.push_str("&#91;"),
            ']' => out.push_str("&#93;"),
            // `@name` would notify; `#12` and `org/repo#12` would cross-reference an issue.
            '@' | '#' => {
                out.push(c);
                out.push(ZWJ);
            }
            ':' if out.ends_with("capstan") => {
                out.push(ZWJ);
                out.push(':');
            }
            // Other control characters can confuse renderers and terminals alike.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A fenced code block holding `content` verbatim (apart from the neutralisations below). The fence
/// is longer than any backtick run inside, so the content cannot close it; `</details>` and HTML
/// are inert inside a code block; mentions inside code do not notify.
pub fn fenced(content: &str, info: &str) -> String {
    let body = neutralise_block(content);
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    let mut out = String::with_capacity(body.len() + 2 * fence.len() + info.len() + 4);
    out.push_str(&fence);
    out.push_str(info);
    out.push('\n');
    out.push_str(&body);
    if !body.is_empty() && !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// Untrusted multi-line text that stays inside a code block: the marker key is broken and a line
/// that starts with `/` is prefixed so that no line of the comment reads as a command, even to a
/// parser that does not know about code blocks.
fn neutralise_block(content: &str) -> String {
    // Carriage returns go first: dropped after the checks below, they could join the pieces of
    // a marker key or hide a line start from them.
    let content = content.replace('\r', "");
    let mut out = String::with_capacity(content.len() + 16);
    for (i, line) in content.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('/') {
            let lead = &line[..line.len() - trimmed.len()];
            out.push_str(lead);
            out.push(ZWSP);
            out.push_str(trimmed);
        } else {
            out.push_str(line);
        }
    }
    let key_broken = format!("capstan{ZWJ}:report");
    out.replace(MARKER_KEY, &key_broken)
}

/// [`inline`] of at most `max` output bytes. A cut never leaves a dangling backslash that could
/// escape the markup Capstan writes after it (a table's `|`, for example).
pub fn inline_max(text: &str, max: usize) -> String {
    capped(inline(truncate(text, max).0), max)
}

/// [`html_text`] of at most `max` output bytes.
pub fn html_text_max(text: &str, max: usize) -> String {
    capped(html_text(truncate(text, max).0), max)
}

fn capped(escaped: String, max: usize) -> String {
    let (cut, was_cut) = truncate(&escaped, max);
    if !was_cut {
        return escaped;
    }
    let mut out = cut.to_string();
    let trailing = out.len() - out.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        out.pop();
    }
    // A cut entity (`&am`) shows as text; it cannot open a tag because `<` is always escaped.
    out.push('…');
    out
}

fn longest_backtick_run(s: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// Percent-encodes an app name for a URL fragment (`#app-<name>`), so a name cannot end the link.
pub fn url_fragment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cuts `text` to at most `max` bytes on a character boundary; `true` when something was cut.
pub fn truncate(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn inline_breaks_html_mentions_and_marker() {
        let s = inline("a</details>@org/team <!-- capstan:report pr=1 part=1 -->\n/capstan hold");
        assert!(!s.contains('<'));
        assert!(!s.contains("@org"));
        assert!(!s.contains(MARKER_KEY));
        assert!(!s.contains('\n'));
    }

    #[test]
    fn html_text_has_no_backslash_escapes() {
        assert_eq!(html_text("my_app"), "my_app");
        assert_eq!(html_text("a<b>#1"), "a&lt;b&gt;#\u{200D}1");
    }

    #[test]
    fn fence_is_longer_than_content_runs() {
        let f = fenced("x ```` y", "diff");
        assert!(f.starts_with("`````diff\n"));
        assert!(f.ends_with("\n`````\n"));
    }

    #[test]
    fn block_lines_never_start_with_a_slash() {
        let f = fenced("ok\n  /capstan promote production\n/diff", "text");
        for line in f.lines() {
            assert!(!line.trim_start().starts_with('/'), "{line:?}");
        }
    }

    /// Found by the fuzzer: carriage returns were dropped after the marker key was broken, so
    /// `cap\rstan:report` came out as the key itself.
    #[test]
    fn a_carriage_return_cannot_rejoin_the_marker_key_or_a_command() {
        let f = fenced("cap\rstan:report\n\r/capstan hold\nx\r\n", "text");
        assert!(!f.contains(MARKER_KEY), "{f:?}");
        assert!(!f.contains('\r'));
        for line in f.lines() {
            assert!(!line.trim_start().starts_with('/'), "{line:?}");
        }
    }

    #[test]
    fn inline_max_caps_output_and_never_ends_in_an_escape() {
        for n in 1..40 {
            let s = inline_max("***|||<<<@@@", n);
            assert!(s.len() <= n + '…'.len_utf8(), "{n}: {s}");
            let body = s.trim_end_matches('…');
            let trailing = body.len() - body.trim_end_matches('\\').len();
            assert_eq!(trailing % 2, 0, "{n}: {s}");
        }
    }

    #[test]
    fn fragment_is_percent_encoded() {
        assert_eq!(url_fragment("a b)#"), "a%20b%29%23");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let (t, cut) = truncate("aé", 2);
        assert_eq!(t, "a");
        assert!(cut);
    }
}
