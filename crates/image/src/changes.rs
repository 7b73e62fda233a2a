//! Dockerfile instructions applied to an image config, as `docker import
//! --change` and `docker commit --change` take them: CMD, ENTRYPOINT, ENV,
//! EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Applies each change to `config` (the image config's `config` object).
pub fn apply_changes(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for change in changes {
        apply_change(config, change)?;
    }
    Ok(())
}

/// The map under `key`, created when absent or null.
fn map_entry<'a>(
    config: &'a mut Map<String, Value>,
    key: &str,
    change: &str,
) -> Result<&'a mut Map<String, Value>> {
    let v = config.entry(key).or_insert(Value::Null);
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut()
        .ok_or_else(|| bad(change, format!("image {key} is not a map")))
}

/// The list under `key`, created when absent or null.
fn list_entry<'a>(
    config: &'a mut Map<String, Value>,
    key: &str,
    change: &str,
) -> Result<&'a mut Vec<Value>> {
    let v = config.entry(key).or_insert(Value::Null);
    if v.is_null() {
        *v = json!([]);
    }
    v.as_array_mut()
        .ok_or_else(|| bad(change, format!("image {key} is not a list")))
}

fn bad(change: &str, why: impl Into<String>) -> Error {
    Error::invalid(format!("change {change:?}"), why)
}

fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    let trimmed = change.trim();
    let (instr, args) = trimmed
        .split_once(|c: char| c.is_whitespace())
        .map(|(i, a)| (i, a.trim()))
        .unwrap_or((trimmed, ""));
    let upper = instr.to_uppercase();
    if args.is_empty() && !matches!(upper.as_str(), "CMD" | "ENTRYPOINT") {
        return Err(bad(
            change,
            format!("{upper} requires at least one argument"),
        ));
    }
    match upper.as_str() {
        "CMD" | "ENTRYPOINT" => {
            let key = if upper == "CMD" { "Cmd" } else { "Entrypoint" };
            let value = if args.is_empty() {
                Value::Null
            } else {
                json!(command(args))
            };
            config.insert(key.into(), value);
        }
        "ENV" => {
            let list = list_entry(config, "Env", change)?;
            for (k, v) in key_values(args, change)? {
                let prefix = format!("{k}=");
                list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                list.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let map = map_entry(config, "Labels", change)?;
            for (k, v) in key_values(args, change)? {
                map.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let map = map_entry(config, "ExposedPorts", change)?;
            for p in args.split_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let valid_port = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
                let range_ok = match port.split_once('-') {
                    Some((a, b)) => valid_port(a) && valid_port(b),
                    None => valid_port(port),
                };
                if !range_ok || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(bad(change, format!("invalid port {p:?}")));
                }
                map.insert(format!("{port}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let map = map_entry(config, "Volumes", change)?;
            let list: Vec<String> = match serde_json::from_str::<Vec<String>>(args) {
                Ok(l) => l,
                Err(_) => args.split_whitespace().map(str::to_string).collect(),
            };
            for v in list {
                map.insert(v, json!({}));
            }
        }
        "ONBUILD" => {
            list_entry(config, "OnBuild", change)?.push(json!(args));
        }
        "USER" => {
            config.insert("User".into(), json!(args));
        }
        "WORKDIR" => {
            let current = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/");
            let dir = if args.starts_with('/') {
                args.to_string()
            } else {
                format!("{}/{args}", current.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(dir));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(args));
        }
        _ => {
            return Err(Error::invalid(
                "change",
                format!("{upper} is not a valid change command"),
            ))
        }
    }
    Ok(())
}

/// Exec form (a JSON list) or shell form (wrapped in `/bin/sh -c`).
fn command(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(args) {
            return list;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), args.into()]
}

/// `K=V K2="v 2"` pairs, or the legacy `K value with spaces` form.
fn key_values(args: &str, change: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(args).map_err(|why| bad(change, why))?;
    if !words.first().is_some_and(|w| w.contains('=')) {
        let (k, v) = args
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(change, "expected KEY=VALUE or KEY VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| bad(change, format!("{w:?} is not KEY=VALUE")))
        })
        .collect()
}

/// Splits on whitespace, honouring double and single quotes and backslash
/// escapes as Dockerfiles do.
fn split_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<Value> {
        let mut m = Map::new();
        apply_changes(
            &mut m,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(Value::Object(m))
    }

    #[test]
    fn applies_dockerfile_instructions() {
        let c = apply(&[
            "CMD [\"/bin/sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /entry.sh arg",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "LABEL org.x=\"y z\" k=v",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "USER 1000:1000",
            "WORKDIR /app",
            "WORKDIR sub",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN true",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/entry.sh arg"]));
        assert_eq!(c["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(c["Labels"], json!({"org.x": "y z", "k": "v"}));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["WorkingDir"], json!("/app/sub"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let e = apply(&["FROM busybox"]).unwrap_err();
        assert!(
            e.to_string().contains("FROM is not a valid change command"),
            "{e}"
        );
        assert!(apply(&["EXPOSE 99999"]).is_err());
        assert!(apply(&["ENV"]).is_err());
        assert!(apply(&["LABEL a=\"unterminated"]).is_err());
    }
}
