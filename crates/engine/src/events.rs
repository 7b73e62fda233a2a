//! `docker events`: the event log in `quai.db`, read back in commit order.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::engine::Engine;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub time: i64,
    pub typ: String,
    pub action: String,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// docker's event message (the API's and `--format`'s fields).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Action": self.action,
            "Actor": {"ID": self.actor, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time / 1_000_000_000,
            "timeNano": self.time,
        });
        if self.typ == "container" || self.typ == "image" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.actor);
            if let Some(image) = self.attributes.get("image") {
                v["from"] = json!(image);
            }
        }
        v
    }

    /// docker's text line: time, type, action, actor, (attributes).
    pub fn line(&self) -> String {
        let secs = self.time.div_euclid(1_000_000_000);
        let nanos = self.time.rem_euclid(1_000_000_000);
        let base = quai_image::time::format_rfc3339(secs, 0);
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}.{nanos:09}Z {} {} {} ({})",
            base.trim_end_matches('Z'),
            self.typ,
            self.action,
            self.actor,
            attrs.join(", ")
        )
    }
}

impl Engine {
    /// Events after sequence number `after`, between `since` and `until`
    /// (unix ns), oldest first.
    pub fn events(
        &mut self,
        after: i64,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<Event>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, time, type, action, actor, attributes FROM events \
             WHERE seq > ?1 AND time >= ?2 AND time <= ?3 ORDER BY seq",
        )?;
        let rows = stmt.query_map(
            (after, since.unwrap_or(0), until.unwrap_or(i64::MAX)),
            |r| {
                let attrs: String = r.get(5)?;
                Ok(Event {
                    seq: r.get(0)?,
                    time: r.get(1)?,
                    typ: r.get(2)?,
                    action: r.get(3)?,
                    actor: r.get(4)?,
                    attributes: serde_json::from_str(&attrs).unwrap_or_default(),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest event's sequence number (0 when there is none).
    pub fn last_event(&mut self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_dockers() {
        let e = Event {
            seq: 1,
            time: 1_700_000_000_000_000_123,
            typ: "container".into(),
            action: "start".into(),
            actor: "abc".into(),
            attributes: [
                ("image".to_string(), "busybox".to_string()),
                ("name".to_string(), "x".to_string()),
            ]
            .into(),
        };
        assert_eq!(
            e.line(),
            "2023-11-14T22:13:20.000000123Z container start abc (image=busybox, name=x)"
        );
        assert_eq!(e.to_json()["from"], "busybox");
        assert_eq!(e.to_json()["Actor"]["Attributes"]["name"], "x");
    }
}
