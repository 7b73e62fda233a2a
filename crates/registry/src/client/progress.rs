//! Progress of pulls and pushes as Docker's JSON messages
//! (`{"status","progressDetail","id"}`): the CLI renders them as bars or
//! lines, and the Engine API can stream them as they are (one JSON object
//! per line, [`json_lines`]).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// One message, in the shape of Docker's `jsonmessage.JSONMessage`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: String,
    #[serde(
        rename = "progressDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub detail: Option<ProgressDetail>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgressDetail {
    pub current: u64,
    pub total: u64,
}

impl Progress {
    /// A message about one layer (`id` is the short digest).
    pub fn layer(id: &str, status: impl Into<String>) -> Progress {
        Progress {
            id: Some(id.to_string()),
            status: status.into(),
            detail: None,
        }
    }

    /// A message about the whole image.
    pub fn image(status: impl Into<String>) -> Progress {
        Progress {
            id: None,
            status: status.into(),
            detail: None,
        }
    }

    /// The JSON object on one line, newline included.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("progress serializes");
        line.push('\n');
        line
    }
}

/// Where progress goes; called from any task, so it must be cheap.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// A sink that drops everything (`-q`).
pub fn discard() -> ProgressSink {
    Arc::new(|_| {})
}

/// A sink writing one JSON object per line to `out` (Docker's
/// `application/json` progress stream). Write errors stop the output, not
/// the transfer: a client that went away must not fail a pull.
pub fn json_lines<W: Write + Send + 'static>(out: W) -> ProgressSink {
    let out = Mutex::new(Some(out));
    Arc::new(move |p: Progress| {
        let mut guard = out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = guard.as_mut() {
            if w.write_all(p.to_json_line().as_bytes())
                .and_then(|()| w.flush())
                .is_err()
            {
                *guard = None;
            }
        }
    })
}

/// Byte counts become messages only every `step` bytes (and at the end), so
/// that a 300 MB layer makes hundreds of messages, not tens of thousands.
pub(crate) struct Throttle {
    last: u64,
    step: u64,
}

impl Throttle {
    pub(crate) fn new(total: u64) -> Throttle {
        Throttle {
            last: 0,
            step: (total / 200).max(256 << 10),
        }
    }

    pub(crate) fn due(&mut self, current: u64, total: u64) -> bool {
        if current >= total || current >= self.last + self.step {
            self.last = current;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_dockers_messages() {
        let out = Shared::default();
        let sink = json_lines(out.clone());
        sink(Progress::layer("0123456789ab", "Pulling fs layer"));
        sink(Progress {
            id: Some("0123456789ab".into()),
            status: "Downloading".into(),
            detail: Some(ProgressDetail {
                current: 10,
                total: 20,
            }),
        });
        sink(Progress::image("Digest: sha256:00"));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"id":"0123456789ab","status":"Pulling fs layer"}"#,
                r#"{"id":"0123456789ab","status":"Downloading","progressDetail":{"current":10,"total":20}}"#,
                r#"{"status":"Digest: sha256:00"}"#,
            ]
        );
        let back: Progress = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(back.detail.unwrap().current, 10);
    }

    #[test]
    fn throttle_reports_steps_and_the_end() {
        let total = 100 << 20;
        let mut t = Throttle::new(total);
        let reported = (1..=total / 65536)
            .filter(|i| t.due(i * 65536, total))
            .count();
        assert!((150..=210).contains(&reported), "{reported}");
        assert!(Throttle::new(10).due(10, 10));
    }
}
