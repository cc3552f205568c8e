//! A small PromQL parser for the alert rules: enough of the language to refuse what Prometheus
//! would refuse at rule load (syntax, unknown functions, a range vector where an instant vector
//! belongs, a regex RE2 would not compile) and to list every metric a rule selects. It is not an
//! evaluator; `@` modifiers and experimental functions are refused rather than half-understood.

use std::collections::BTreeSet;

/// What an expression evaluates to, as far as the type rules of PromQL go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Scalar,
    Vector,
    Matrix,
    Str,
}

/// The result of parsing one expression.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub ty: Type,
    /// Metric names of every selector (`__name__` equality matchers included).
    pub metrics: BTreeSet<String>,
    /// Selectors with label matchers, as (metric, label) pairs, for label checks.
    pub labels: BTreeSet<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Dur(String),
    Op(&'static str),
}

const OPS: [&str; 26] = [
    "==", "!=", ">=", "<=", "=~", "!~", "(", ")", "{", "}", "[", "]", ",", ":", "+", "-", "*", "/",
    "%", "^", ">", "<", "=", "@", "!", "`",
];

fn is_duration(s: &str) -> bool {
    // One or more <digits><unit> groups, units in Prometheus' order.
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!("unterminated string starting with {c}"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' && c != '`' {
                    let Some(&e) = chars.get(i) else {
                        return Err("a string ends in a backslash".into());
                    };
                    i += 1;
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        '\\' | '"' | '\'' => s.push(e),
                        // RE2 escapes such as \. pass through to the regex unchanged.
                        _ => {
                            s.push('\\');
                            s.push(e);
                        }
                    }
                } else {
                    s.push(d);
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                // An exponent's sign belongs to the number (1e-3).
                if (chars[i] == 'e' || chars[i] == 'E')
                    && matches!(chars.get(i + 1), Some('+') | Some('-'))
                {
                    i += 1;
                }
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if is_duration(&word) && !word.chars().all(|c| c.is_ascii_digit()) {
                out.push(Tok::Dur(word));
            } else {
                let n: f64 = word.parse().map_err(|_| format!("bad number {word:?}"))?;
                out.push(Tok::Num(n));
            }
        } else if c.is_ascii_alphabetic()
            || c == '_'
            // A leading colon starts a recording-rule name; otherwise it is a subquery's step.
            || (c == ':' && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == '_'))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(*op))
                .ok_or_else(|| format!("unexpected character {c:?}"))?;
            if matches!(*op, "@" | "!" | "`") {
                return Err(format!("unsupported token {op:?}"));
            }
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Stable functions: (argument types, how many are required, result type).
fn function(name: &str) -> Option<(&'static [Type], usize, Type)> {
    use Type::*;
    let f: (&'static [Type], usize, Type) = match name {
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "sort"
        | "sort_desc" | "deg" | "rad" | "acos" | "asin" | "atan" | "cos" | "sin" | "tan"
        | "absent" | "timestamp" => (&[Vector], 1, Vector),
        "round" => (&[Vector, Scalar], 1, Vector),
        "clamp" => (&[Vector, Scalar, Scalar], 3, Vector),
        "clamp_min" | "clamp_max" => (&[Vector, Scalar], 2, Vector),
        "rate" | "irate" | "increase" | "delta" | "idelta" | "deriv" | "changes" | "resets"
        | "absent_over_time" | "present_over_time" | "avg_over_time" | "min_over_time"
        | "max_over_time" | "sum_over_time" | "count_over_time" | "stddev_over_time"
        | "stdvar_over_time" | "last_over_time" => (&[Matrix], 1, Vector),
        "quantile_over_time" => (&[Scalar, Matrix], 2, Vector),
        "predict_linear" => (&[Matrix, Scalar], 2, Vector),
        "histogram_quantile" => (&[Scalar, Vector], 2, Vector),
        "label_replace" => (&[Vector, Str, Str, Str, Str], 5, Vector),
        "time" | "pi" => (&[], 0, Scalar),
        "vector" => (&[Scalar], 1, Vector),
        "scalar" => (&[Vector], 1, Scalar),
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => (&[Vector], 0, Vector),
        _ => return None,
    };
    Some(f)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    metrics: BTreeSet<String>,
    labels: BTreeSet<(String, String)>,
}

/// Binary operators by precedence, lowest first (`^` is right-associative).
const LEVELS: [&[&str]; 6] = [
    &["or"],
    &["and", "unless"],
    &["==", "!=", ">", "<", ">=", "<="],
    &["+", "-"],
    &["*", "/", "%", "atan2"],
    &["^"],
];

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Op(o)) if o == op => Ok(()),
            other => Err(format!("expected {op:?}, found {other:?}")),
        }
    }

    fn binary_op_at(&self, level: usize) -> Option<String> {
        match self.peek()? {
            Tok::Op(o) if LEVELS[level].contains(o) => Some((*o).to_string()),
            Tok::Ident(w) if LEVELS[level].contains(&w.as_str()) => Some(w.clone()),
            _ => None,
        }
    }

    fn label_list(&mut self) -> Result<(), String> {
        self.expect("(")?;
        while !self.is_op(")") {
            match self.next() {
                Some(Tok::Ident(_)) => {}
                other => return Err(format!("expected a label name, found {other:?}")),
            }
            if !self.is_op(")") {
                self.expect(",")?;
            }
        }
        self.expect(")")
    }

    fn expr(&mut self, level: usize) -> Result<Type, String> {
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.expr(level + 1)?;
        while let Some(op) = self.binary_op_at(level) {
            self.pos += 1;
            let comparison = level == 2;
            let mut bool_mod = false;
            if self.is_ident("bool") {
                if !comparison {
                    return Err(format!("`bool` after non-comparison operator {op}"));
                }
                self.pos += 1;
                bool_mod = true;
            }
            let mut matching = false;
            if self.is_ident("on") || self.is_ident("ignoring") {
                self.pos += 1;
                self.label_list()?;
                matching = true;
                if self.is_ident("group_left") || self.is_ident("group_right") {
                    self.pos += 1;
                    if self.is_op("(") {
                        self.label_list()?;
                    }
                }
            }
            // `^` binds right: its right side is parsed at the same level.
            let rhs = if op == "^" {
                self.expr(level)?
            } else {
                self.expr(level + 1)?
            };
            lhs = binary_type(&op, lhs, rhs, bool_mod, matching)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Type, String> {
        if self.is_op("-") || self.is_op("+") {
            self.pos += 1;
            let t = self.unary()?;
            return match t {
                Type::Scalar | Type::Vector => Ok(t),
                _ => Err(format!("unary sign on a {t:?}")),
            };
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Type, String> {
        let mut t = self.primary()?;
        loop {
            if self.is_op("[") {
                let after_selector = self.closes_selector();
                self.pos += 1;
                self.duration()?;
                if self.is_op(":") {
                    // Subquery: any instant vector expression, optional resolution.
                    self.pos += 1;
                    if !self.is_op("]") {
                        self.duration()?;
                    }
                    if t != Type::Vector {
                        return Err(format!("subquery over a {t:?}"));
                    }
                } else if t != Type::Vector || !after_selector {
                    return Err("a range [..] applies only to a vector selector".into());
                }
                self.expect("]")?;
                t = Type::Matrix;
            } else if self.is_ident("offset") {
                self.pos += 1;
                if self.is_op("-") {
                    self.pos += 1;
                }
                self.duration()?;
                if !matches!(t, Type::Vector | Type::Matrix) {
                    return Err(format!("offset on a {t:?}"));
                }
            } else {
                return Ok(t);
            }
        }
    }

    /// Whether the token before the current one ends a vector selector (a name or `}`).
    fn closes_selector(&self) -> bool {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .is_some_and(|t| matches!(t, Tok::Ident(_) | Tok::Op("}")))
    }

    fn duration(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Tok::Dur(_)) => Ok(()),
            other => Err(format!("expected a duration, found {other:?}")),
        }
    }

    fn primary(&mut self) -> Result<Type, String> {
        match self.next() {
            Some(Tok::Num(_)) => Ok(Type::Scalar),
            Some(Tok::Str(_)) => Ok(Type::Str),
            Some(Tok::Op("(")) => {
                let t = self.expr(0)?;
                self.expect(")")?;
                Ok(t)
            }
            Some(Tok::Op("{")) => {
                self.pos -= 1;
                self.selector(None)
            }
            Some(Tok::Ident(word)) => {
                if AGGREGATIONS.contains(&word.as_str()) {
                    return self.aggregation(&word);
                }
                if self.is_op("(") {
                    return self.call(&word);
                }
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "bool" | "offset"
                ) {
                    return Err(format!("keyword {word:?} where an expression belongs"));
                }
                if word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan") {
                    return Ok(Type::Scalar);
                }
                self.selector(Some(word))
            }
            other => Err(format!("expected an expression, found {other:?}")),
        }
    }

    fn selector(&mut self, name: Option<String>) -> Result<Type, String> {
        let mut metric = name;
        let mut labels = Vec::new();
        let mut any_non_empty = metric.is_some();
        if self.is_op("{") {
            self.pos += 1;
            while !self.is_op("}") {
                let label = match self.next() {
                    Some(Tok::Ident(l)) => l,
                    other => return Err(format!("expected a label name, found {other:?}")),
                };
                let op = match self.next() {
                    Some(Tok::Op(o)) if matches!(o, "=" | "!=" | "=~" | "!~") => o,
                    other => return Err(format!("expected a matcher operator, found {other:?}")),
                };
                let value = match self.next() {
                    Some(Tok::Str(s)) => s,
                    other => return Err(format!("expected a quoted label value, found {other:?}")),
                };
                if op.ends_with('~') {
                    // Prometheus anchors label regexes; RE2 and the regex crate share the syntax.
                    regex::Regex::new(&format!("^(?:{value})$"))
                        .map_err(|e| format!("label {label}: bad regex {value:?}: {e}"))?;
                }
                let matches_empty = match op {
                    "=" => value.is_empty(),
                    "!=" => !value.is_empty(),
                    _ => regex::Regex::new(&format!("^(?:{value})$"))
                        .map(|r| r.is_match("") == (op == "=~"))
                        .unwrap_or(true),
                };
                any_non_empty |= !matches_empty;
                if label == "__name__" && op == "=" {
                    metric = Some(value);
                } else {
                    labels.push(label);
                }
                if !self.is_op("}") {
                    self.expect(",")?;
                }
            }
            self.expect("}")?;
        }
        if !any_non_empty {
            return Err(
                "a selector needs a metric name or a matcher that does not match empty".into(),
            );
        }
        let Some(metric) = metric else {
            return Err("selectors without a metric name are not checkable".into());
        };
        for l in labels {
            self.labels.insert((metric.clone(), l));
        }
        self.metrics.insert(metric);
        Ok(Type::Vector)
    }

    fn call(&mut self, name: &str) -> Result<Type, String> {
        let Some((args, required, result)) = function(name) else {
            return Err(format!("unknown function {name}()"));
        };
        self.expect("(")?;
        let mut got = Vec::new();
        while !self.is_op(")") {
            got.push(self.expr(0)?);
            if !self.is_op(")") {
                self.expect(",")?;
            }
        }
        self.expect(")")?;
        if got.len() < required || got.len() > args.len() {
            return Err(format!(
                "{name}() takes {required}..{} arguments, got {}",
                args.len(),
                got.len()
            ));
        }
        for (i, (want, have)) in args.iter().zip(&got).enumerate() {
            if want != have {
                return Err(format!(
                    "{name}() argument {}: expected {want:?}, got {have:?}",
                    i + 1
                ));
            }
        }
        Ok(result)
    }

    fn aggregation(&mut self, name: &str) -> Result<Type, String> {
        let mut grouped = false;
        if self.is_ident("by") || self.is_ident("without") {
            self.pos += 1;
            self.label_list()?;
            grouped = true;
        }
        self.expect("(")?;
        let param = matches!(
            name,
            "topk" | "bottomk" | "quantile" | "count_values" | "limitk" | "limit_ratio"
        );
        if param {
            let want = if name == "count_values" {
                Type::Str
            } else {
                Type::Scalar
            };
            let p = self.expr(0)?;
            if p != want {
                return Err(format!("{name}: parameter must be a {want:?}, got {p:?}"));
            }
            self.expect(",")?;
        }
        let inner = self.expr(0)?;
        self.expect(")")?;
        if inner != Type::Vector {
            return Err(format!("{name}() over a {inner:?}"));
        }
        if !grouped && (self.is_ident("by") || self.is_ident("without")) {
            self.pos += 1;
            self.label_list()?;
        }
        Ok(Type::Vector)
    }
}

fn binary_type(
    op: &str,
    lhs: Type,
    rhs: Type,
    bool_mod: bool,
    matching: bool,
) -> Result<Type, String> {
    use Type::*;
    for t in [lhs, rhs] {
        if matches!(t, Matrix | Str) {
            return Err(format!("operator {op} on a {t:?}"));
        }
    }
    let set_op = matches!(op, "and" | "or" | "unless");
    if set_op && (lhs != Vector || rhs != Vector) {
        return Err(format!("set operator {op} needs two vectors"));
    }
    if matching && (lhs != Vector || rhs != Vector) {
        return Err(format!("vector matching on {op} needs two vectors"));
    }
    let comparison = matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=");
    if comparison && lhs == Scalar && rhs == Scalar && !bool_mod {
        return Err(format!("comparison {op} between scalars needs `bool`"));
    }
    Ok(if lhs == Scalar && rhs == Scalar {
        Scalar
    } else {
        Vector
    })
}

/// Parse one expression; every error says what Prometheus would have refused.
pub(crate) fn parse(src: &str) -> Result<Parsed, String> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        metrics: BTreeSet::new(),
        labels: BTreeSet::new(),
    };
    let ty = p.expr(0)?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "unexpected {:?} after the expression",
            p.toks[p.pos]
        ));
    }
    Ok(Parsed {
        ty,
        metrics: p.metrics,
        labels: p.labels,
    })
}
