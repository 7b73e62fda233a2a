//! Docker's `--format`: Go-template-style templates over JSON values, the
//! `table` directive (aligned columns with a header), `json`, and the human
//! units docker prints (sizes, "2 hours ago"). Every listing command
//! (`images`, `ps`, `network ls`, ...) formats its rows through here.
//!
//! Supported template syntax: `{{.Field}}`, `{{.A.B}}`, `{{.}}`, string and
//! number literals, functions `json`, `upper`, `lower`, `title`, `join`,
//! `index`, `len`, `truncate`, `println`, pipes (`{{.X | upper}}`), and
//! `{{range …}}…{{end}}`, `{{if …}}…{{else}}…{{end}}`, `{{with …}}…{{end}}`.

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// A parsed `--format` value.
pub struct Format {
    table: bool,
    template: Template,
}

impl Format {
    /// Parses a `--format` value; `default_table` is used when it is empty
    /// or `table`.
    pub fn parse(spec: Option<&str>, default_table: &str) -> Result<Format> {
        let spec = spec.unwrap_or("").trim();
        let spec = match spec {
            "" | "table" => default_table,
            "json" => "{{json .}}",
            s => s,
        };
        let (table, body) = match spec.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim())
            }
            _ => (false, spec),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format {
            table,
            template: Template::parse(&body)?,
        })
    }

    /// Renders `rows`; `headers` maps a field name to its column title.
    pub fn render(&self, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
        let mut lines = Vec::new();
        if self.table {
            let header_row = Value::Object(
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect(),
            );
            lines.push(self.template.render(&header_row)?);
        }
        for row in rows {
            lines.push(self.template.render(row)?);
        }
        let mut out = String::new();
        if self.table {
            out = tabwrite(&lines);
        } else {
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// Aligns tab-separated cells like Go's tabwriter with docker's settings
/// (minimum width 10, padding 3).
pub fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(cell.chars().count() + 3).max(10);
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                for _ in cell.chars().count()..widths[i] {
                    line.push(' ');
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Sub(Pipeline),
}

#[derive(Debug, Clone)]
struct Command {
    func: Option<String>,
    args: Vec<Arg>,
}

type Pipeline = Vec<Command>;

#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let mut tokens = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                tokens.push((false, rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow!("template parsing error: unclosed action in {src:?}"))?;
            tokens.push((true, after[..end].trim().to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            tokens.push((false, rest.to_string()));
        }
        let mut pos = 0;
        let (nodes, stop) = parse_nodes(&tokens, &mut pos)?;
        if let Some(s) = stop {
            bail!("template parsing error: unexpected {{{{{s}}}}}");
        }
        Ok(Template { nodes })
    }

    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// Parses nodes until `{{end}}` / `{{else}}` (returned as the stop word).
fn parse_nodes(tokens: &[(bool, String)], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let (is_action, text) = &tokens[*pos];
        *pos += 1;
        if !is_action {
            nodes.push(Node::Text(text.clone()));
            continue;
        }
        let word = text.split_whitespace().next().unwrap_or("");
        match word {
            "end" | "else" => return Ok((nodes, Some(word.to_string()))),
            "range" | "if" | "with" => {
                let pipe = parse_pipeline(text[word.len()..].trim())?;
                let (body, stop) = parse_nodes(tokens, pos)?;
                let otherwise = match stop.as_deref() {
                    Some("else") => {
                        let (e, stop2) = parse_nodes(tokens, pos)?;
                        if stop2.as_deref() != Some("end") {
                            bail!("template parsing error: missing {{{{end}}}}");
                        }
                        e
                    }
                    Some("end") => Vec::new(),
                    _ => bail!("template parsing error: missing {{{{end}}}}"),
                };
                nodes.push(match word {
                    "range" => Node::Range(pipe, body, otherwise),
                    "if" => Node::If(pipe, body, otherwise),
                    _ => Node::With(pipe, body, otherwise),
                });
            }
            _ => nodes.push(Node::Action(parse_pipeline(text)?)),
        }
    }
    Ok((nodes, None))
}

fn lex(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut lit = String::from('"');
            let mut closed = false;
            while let Some(n) = chars.next() {
                if n == c {
                    closed = true;
                    break;
                }
                if n == '\\' && c == '"' {
                    match chars.next() {
                        Some('n') => lit.push('\n'),
                        Some('t') => lit.push('\t'),
                        Some(o) => lit.push(o),
                        None => {}
                    }
                } else {
                    lit.push(n);
                }
            }
            if !closed {
                bail!("template parsing error: unterminated string in {s:?}");
            }
            out.push(lit);
        } else if c == '(' || c == ')' || c == '|' {
            out.push(c.to_string());
            chars.next();
        } else {
            let mut word = String::new();
            while let Some(&n) = chars.peek() {
                if n.is_whitespace() || n == '(' || n == ')' || n == '|' {
                    break;
                }
                word.push(n);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

fn parse_pipeline(s: &str) -> Result<Pipeline> {
    let tokens = lex(s)?;
    let mut pos = 0;
    let p = parse_pipe_tokens(&tokens, &mut pos)?;
    if pos != tokens.len() {
        bail!(
            "template parsing error: unexpected {:?} in {s:?}",
            tokens[pos]
        );
    }
    Ok(p)
}

fn parse_pipe_tokens(tokens: &[String], pos: &mut usize) -> Result<Pipeline> {
    let mut pipe = Vec::new();
    let mut cmd = Command {
        func: None,
        args: Vec::new(),
    };
    let mut first = true;
    while *pos < tokens.len() {
        let t = &tokens[*pos];
        match t.as_str() {
            ")" => break,
            "|" => {
                *pos += 1;
                pipe.push(std::mem::replace(
                    &mut cmd,
                    Command {
                        func: None,
                        args: Vec::new(),
                    },
                ));
                first = true;
                continue;
            }
            "(" => {
                *pos += 1;
                let sub = parse_pipe_tokens(tokens, pos)?;
                if tokens.get(*pos).map(String::as_str) != Some(")") {
                    bail!("template parsing error: unclosed (");
                }
                *pos += 1;
                cmd.args.push(Arg::Sub(sub));
                first = false;
                continue;
            }
            _ => {}
        }
        *pos += 1;
        let arg = if let Some(lit) = t.strip_prefix('"') {
            Arg::Str(lit.to_string())
        } else if t == "." {
            Arg::Field(Vec::new())
        } else if let Some(path) = t.strip_prefix('.') {
            Arg::Field(path.split('.').map(str::to_string).collect())
        } else if let Ok(n) = t.parse::<f64>() {
            Arg::Num(n)
        } else if t == "true" || t == "false" {
            Arg::Bool(t == "true")
        } else if first {
            if !FUNCTIONS.contains(&t.as_str()) {
                bail!("template parsing error: function {t:?} not defined");
            }
            cmd.func = Some(t.clone());
            first = false;
            continue;
        } else {
            bail!("template parsing error: unexpected {t:?}");
        };
        cmd.args.push(arg);
        first = false;
    }
    if cmd.func.is_none() && cmd.args.is_empty() {
        bail!("template parsing error: empty command");
    }
    pipe.push(cmd);
    Ok(pipe)
}

const FUNCTIONS: &[&str] = &[
    "json", "upper", "lower", "title", "join", "index", "len", "truncate", "println", "print",
    "pad",
];

fn lookup(data: &Value, path: &[String]) -> Result<Value> {
    let mut cur = data.clone();
    for p in path {
        cur = match cur {
            Value::Object(mut m) => match m.remove(p) {
                Some(v) => v,
                None => bail!("template: can't evaluate field {p}"),
            },
            Value::Null => Value::Null,
            _ => bail!("template: can't evaluate field {p} in a non-object"),
        };
    }
    Ok(cur)
}

fn eval_arg(a: &Arg, dot: &Value) -> Result<Value> {
    Ok(match a {
        Arg::Field(path) => lookup(dot, path)?,
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => serde_json::json!(n),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Sub(p) => eval_pipeline(p, dot)?,
    })
}

fn eval_pipeline(p: &Pipeline, dot: &Value) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        let mut args: Vec<Value> = cmd
            .args
            .iter()
            .map(|a| eval_arg(a, dot))
            .collect::<Result<_>>()?;
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match &cmd.func {
            None => {
                if args.len() != 1 {
                    bail!("template: can't give arguments to a non-function");
                }
                args.pop().unwrap_or(Value::Null)
            }
            Some(f) => call(f, &args)?,
        });
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn call(f: &str, args: &[Value]) -> Result<Value> {
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| anyhow!("template: wrong number of args for {f}"))
    };
    Ok(match f {
        "json" => Value::String(go_json(arg(0)?)),
        "upper" => Value::String(go_string(arg(0)?).to_uppercase()),
        "lower" => Value::String(go_string(arg(0)?).to_lowercase()),
        "title" => {
            let s = go_string(arg(0)?);
            let mut out = String::new();
            let mut start = true;
            for c in s.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            Value::String(out)
        }
        "join" => {
            let list = arg(0)?.as_array().cloned().unwrap_or_default();
            let sep = go_string(arg(1)?);
            Value::String(list.iter().map(go_string).collect::<Vec<_>>().join(&sep))
        }
        "index" => {
            let mut cur = arg(0)?.clone();
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_f64().unwrap_or(-1.0);
                        a.get(i as usize)
                            .cloned()
                            .filter(|_| i >= 0.0)
                            .ok_or_else(|| anyhow!("template: index out of range: {i}"))?
                    }
                    (Value::Object(m), Value::String(s)) => {
                        m.get(s).cloned().unwrap_or(Value::Null)
                    }
                    _ => bail!("template: can't index item"),
                };
            }
            cur
        }
        "len" => serde_json::json!(match arg(0)? {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            _ => bail!("template: len of a non-collection"),
        }),
        "truncate" => {
            let s = go_string(arg(0)?);
            let n = arg(1)?.as_f64().unwrap_or(0.0).max(0.0) as usize;
            Value::String(s.chars().take(n).collect())
        }
        "pad" => {
            let s = go_string(arg(0)?);
            let l = arg(1)?.as_f64().unwrap_or(0.0) as usize;
            let r = arg(2)?.as_f64().unwrap_or(0.0) as usize;
            Value::String(format!("{}{s}{}", " ".repeat(l), " ".repeat(r)))
        }
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(go_string).collect::<Vec<_>>().join(" ")
        )),
        "print" => Value::String(args.iter().map(go_string).collect::<Vec<_>>().join("")),
        _ => bail!("template: function {f:?} not defined"),
    })
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&go_string(&eval_pipeline(p, dot)?)),
            Node::If(p, body, otherwise) => {
                let v = eval_pipeline(p, dot)?;
                render_nodes(if truthy(&v) { body } else { otherwise }, dot, out)?;
            }
            Node::With(p, body, otherwise) => {
                let v = eval_pipeline(p, dot)?;
                if truthy(&v) {
                    render_nodes(body, &v, out)?;
                } else {
                    render_nodes(otherwise, dot, out)?;
                }
            }
            Node::Range(p, body, otherwise) => {
                let v = eval_pipeline(p, dot)?;
                let items: Vec<Value> = match v {
                    Value::Array(a) => a,
                    Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => bail!("template: range can't iterate over {}", go_string(&other)),
                };
                if items.is_empty() {
                    render_nodes(otherwise, dot, out)?;
                }
                for item in &items {
                    render_nodes(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// A value printed the way Go's text/template prints it.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut s = String::from("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{k}:{}", go_string(v));
            }
            s.push(']');
            s
        }
    }
}

/// JSON as Go's encoding/json writes it: `<`, `>` and `&` escaped.
pub fn go_json(v: &Value) -> String {
    escape_html(&serde_json::to_string(v).unwrap_or_default())
}

/// Indented JSON as docker's `inspect` prints it (4 spaces).
pub fn go_json_pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    escape_html(&String::from_utf8_lossy(&buf))
}

fn escape_html(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Docker's human size: decimal units, 3 significant digits ("4.26MB").
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g3(size), UNITS[i])
}

/// Docker's binary size (`units.BytesSize`): 4 significant digits
/// ("1.465MiB", "7.763GiB"), as `docker stats` prints memory.
pub fn bytes_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g(size, 4), UNITS[i])
}

/// Go's `%.3g`.
fn format_g3(v: f64) -> String {
    format_g(v, 3)
}

/// Go's `%.<digits>g`.
fn format_g(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    // Round to the significant digits first: 999.5 becomes 1e+03.
    let scale = 10f64.powi(digits - 1 - exp);
    let rounded = (v * scale).round() / scale;
    let exp = rounded.abs().log10().floor() as i32;
    if !(-4..digits).contains(&exp) {
        let mantissa = rounded / 10f64.powi(exp);
        let m = trim_zeros(format!("{mantissa:.prec$}", prec = (digits - 1) as usize));
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = (digits - 1 - exp).max(0) as usize;
    trim_zeros(format!("{rounded:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's human duration ("About an hour", "3 weeks").
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let minutes = s / 60;
    let hours = ((s as f64) / 3600.0 + 0.5) as i64;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Go's `time.Time.String()` in UTC, as docker's `CreatedAt` shows it.
pub fn go_time(secs: i64) -> String {
    let rfc = quai_image::time::format_rfc3339(secs, 0);
    format!("{} {} +0000 UTC", &rfc[..10], &rfc[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_functions_and_control() {
        let row = json!({"Repository": "busybox", "Tag": "latest", "Tags": ["a", "b"], "Config": {"Env": ["A=1"]}, "Labels": {}});
        let t = |s: &str| Template::parse(s).unwrap().render(&row).unwrap();
        assert_eq!(t("{{.Repository}}:{{.Tag}}"), "busybox:latest");
        assert_eq!(t("{{json .Tags}}"), r#"["a","b"]"#);
        assert_eq!(t("{{.Tags}}"), "[a b]");
        assert_eq!(t("{{join .Tags \",\"}}"), "a,b");
        assert_eq!(t("{{index .Tags 1}}"), "b");
        assert_eq!(t("{{.Repository | upper}}"), "BUSYBOX");
        assert_eq!(t("{{range .Tags}}<{{.}}>{{end}}"), "<a><b>");
        assert_eq!(t("{{if .Labels}}yes{{else}}no{{end}}"), "no");
        assert_eq!(t("{{with .Config}}{{.Env}}{{end}}"), "[A=1]");
        assert_eq!(t("{{len .Tags}}"), "2");
        assert!(
            t("{{json .}}").starts_with("{\"Repository\":\"busybox\""),
            "{}",
            t("{{json .}}")
        );
        assert!(Template::parse("{{.Repository").is_err());
        assert!(Template::parse("{{nosuchfunc .X}}").is_err());
        assert!(Template::parse("{{.Nope}}").unwrap().render(&row).is_err());
    }

    #[test]
    fn tables_align_like_docker() {
        let f = Format::parse(Some("table {{.A}}\\t{{.B}}"), "").unwrap();
        let out = f
            .render(
                &[
                    json!({"A": "x", "B": "1"}),
                    json!({"A": "longer-than-ten", "B": "2"}),
                ],
                &[("A", "COL A"), ("B", "COL B")],
            )
            .unwrap();
        assert_eq!(
            out,
            "COL A             COL B\nx                 1\nlonger-than-ten   2\n"
        );
    }

    #[test]
    fn human_units_match_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(13_256), "13.3kB");
        assert_eq!(human_size(4_261_552), "4.26MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(999_500), "1e+03kB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(21 * 86400), "3 weeks");
        assert_eq!(human_duration(400 * 86400), "13 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
        assert_eq!(go_time(1_684_527_562), "2023-05-19 20:19:22 +0000 UTC");
        assert_eq!(go_json(&json!("<none>")), "\"\\u003cnone\\u003e\"");
    }
}
