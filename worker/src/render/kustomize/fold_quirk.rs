//! go-yaml v3's folded block scalars, which kustomize reads resources with, differ from libyaml's
//! (the engine's parser) in one place: where a "more-indented" line (starting with a space or tab
//! beyond the content indentation) follows a normal line, go-yaml keeps one more line break.
//! `key: >\n  one\n    two\n` is `"one\n  two\n"` to libyaml and `"one\n\n  two\n"` to go-yaml.
//!
//! Rather than re-implement block scalars, [`adjust`] rewrites the source text so that libyaml
//! reads go-yaml's value: it inserts an empty line before each such more-indented line. Empty
//! lines between a normal and a more-indented line are kept as they are by both parsers, so one
//! extra empty line is exactly the difference. Literal blocks and folded blocks with an explicit
//! indentation indicator are left alone (the latter is rare and its indentation would need the
//! parent's column).

use std::borrow::Cow;

/// `text` with go-yaml's folded-scalar line breaks made explicit, borrowed when nothing changes.
pub fn adjust(text: &str) -> Cow<'_, str> {
    if !text.contains('>') {
        return Cow::Borrowed(text);
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let Some((folded, explicit)) = header(lines[i]) else {
            if let Some(o) = out.as_mut() {
                o.push_str(lines[i]);
            }
            i += 1;
            continue;
        };
        if let Some(o) = out.as_mut() {
            o.push_str(lines[i]);
        }
        let parent = indent(lines[i]);
        let start = i + 1;
        // The content indentation is that of the first non-empty line, if deeper than the header.
        let ci = lines[start..]
            .iter()
            .find(|l| !blank(l))
            .map(|l| indent(l))
            .filter(|&ci| ci > parent);
        let mut end = start;
        if let Some(ci) = ci {
            while end < lines.len() && (blank(lines[end]) || indent(lines[end]) >= ci) {
                end += 1;
            }
        }
        let fix = folded && !explicit && ci.is_some_and(|ci| block_allowed(&lines[start..end], ci));
        let mut prev_normal: Option<bool> = None;
        for (k, line) in lines[start..end].iter().enumerate() {
            let is_content = ci.is_some_and(|ci| content_len(line) > ci);
            if fix && is_content {
                let more =
                    ci.is_some_and(|ci| matches!(line.as_bytes().get(ci), Some(b' ' | b'\t')));
                if more && prev_normal == Some(true) {
                    let o = out.get_or_insert_with(|| lines[..start + k].concat());
                    o.push_str(if line.ends_with("\r\n") { "\r\n" } else { "\n" });
                }
                prev_normal = Some(!more);
            }
            if let Some(o) = out.as_mut() {
                o.push_str(line);
            }
        }
        i = end.max(start);
    }
    match out {
        Some(o) => Cow::Owned(o),
        None => Cow::Borrowed(text),
    }
}

/// Whether go-yaml would write this folded scalar's value back as a block scalar. The extra
/// break comes from that write (kustomize round-trips the node through go-yaml's emitter, whose
/// folded writer adds it); a value with a space before a line break, or ending in a space, is
/// written double-quoted instead and keeps libyaml's reading.
fn block_allowed(lines: &[&str], ci: usize) -> bool {
    // (more-indented, ends with a space, empty lines before it) per content line.
    let mut items: Vec<(bool, bool, bool)> = Vec::new();
    let mut gap = false;
    for line in lines {
        let text = line.trim_end_matches(['\n', '\r']);
        if blank(line) && text.len() <= ci {
            gap = true;
            continue;
        }
        let body = text.get(ci..).unwrap_or("");
        items.push((body.starts_with([' ', '\t']), body.ends_with(' '), gap));
        gap = false;
    }
    items.iter().enumerate().all(|(k, &(more, space_end, _))| {
        // A trailing space survives folding only into a plain space before a normal line.
        !space_end
            || items
                .get(k + 1)
                .is_some_and(|&(next_more, _, gap_before)| !more && !next_more && !gap_before)
    })
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The line without its line break.
fn content_len(line: &str) -> usize {
    line.trim_end_matches(['\n', '\r']).len()
}

/// Only spaces (an empty line of a block scalar unless it reaches past the indentation).
fn blank(line: &str) -> bool {
    line.trim_end_matches(['\n', '\r'])
        .bytes()
        .all(|b| b == b' ')
}

/// `Some((folded, explicit indentation))` when the line ends in a block scalar header
/// (`key: >-`, `- |`, `key: &a !!str >2 # note`).
fn header(line: &str) -> Option<(bool, bool)> {
    let code = strip_comment(line).trim_end();
    let (before, tok) = match code.rfind([' ', '\t']) {
        Some(i) => (&code[..i], &code[i + 1..]),
        None => ("", code),
    };
    let mut chars = tok.chars();
    let folded = match chars.next()? {
        '>' => true,
        '|' => false,
        _ => return None,
    };
    let ind = chars.as_str();
    if ind.len() > 2 || !ind.chars().all(|c| matches!(c, '-' | '+' | '1'..='9')) {
        return None;
    }
    let mut rest = before.trim_end();
    // Anchors and tags may stand between the indicator and its key or dash.
    while let Some(last) = rest.rsplit([' ', '\t']).next()
        && (last.starts_with('&') || last.starts_with('!'))
    {
        rest = rest[..rest.len() - last.len()].trim_end();
    }
    let owner_ok = rest.is_empty()
        || rest.ends_with(':')
        || rest.trim_start() == "---"
        || rest.split_whitespace().all(|t| t == "-");
    owner_ok.then_some((folded, ind.chars().any(|c| c.is_ascii_digit())))
}

/// The line up to a comment (`#` after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev_ws = true;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if prev_ws && !single && !double => return &line[..i],
            _ => {}
        }
        prev_ws = c == ' ' || c == '\t';
    }
    line
}

#[cfg(test)]
mod tests {
    use super::adjust;

    #[test]
    fn more_indented_after_normal_gets_one_more_break() {
        assert_eq!(adjust("a: >\n  one\n    two\n"), "a: >\n  one\n\n    two\n");
        assert_eq!(
            adjust("a: >-\n  x\n\n  \ty\n  z\n"),
            "a: >-\n  x\n\n\n  \ty\n  z\n"
        );
        // Consecutive more-indented lines, a first line already more-indented, literals and
        // explicit indentation are unchanged.
        for same in [
            "a: >\n    one\n  two\n",
            "a: |\n  one\n    two\n",
            "a: >2\n    one\n  two\n",
            "a: x > y\n  b: 1\n",
            "- >\n  one\n\n  two\n",
        ] {
            assert_eq!(adjust(same), same);
        }
        // A space before a kept line break (or at the very end) makes go-yaml write the value
        // double-quoted: no extra break anywhere in that scalar.
        for same in [
            "a: >-\n  first + \n    more\n  back\n",
            "a: >-\n  first +\n    more \n  back\n",
            "a: >-\n  first +\n    more\n  back \n",
            "a: >-\n  one \n\n  two\n    three\n",
            "a: >-\n  one\n      \n    two\n",
        ] {
            assert_eq!(adjust(same), same);
        }
        // A trailing space folded into a plain space leaves the value a block scalar.
        assert_eq!(
            adjust("a: >-\n  one \n  two\n    three\n"),
            "a: >-\n  one \n  two\n\n    three\n"
        );
        assert_eq!(
            adjust("- k: >- # c\n    one\n      two\n      three\n    four\nb: 1\n"),
            "- k: >- # c\n    one\n\n      two\n      three\n    four\nb: 1\n"
        );
    }
}
