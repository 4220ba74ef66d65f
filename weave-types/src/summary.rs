//! `summary.weave`, which servers derive when a call is read (spec §8.2): one function that
//! every backend uses, so that status, latency and name mean the same everywhere.
//!
//! Beyond Weave's four statuses, a call without an end is `interrupted`, not `running`, when
//! its writing process is known to be gone. The Rust client records where each call was
//! written (`attributes.weave`: `host`, `boot_id`, `process_id`, `process_start`, see
//! [`WriterProcess::this_process`]). A reader on the same machine and boot checks that process:
//! gone (or its pid now belongs to a process started at another time) means `interrupted`. A
//! reader elsewhere cannot check, and calls it `interrupted` once the call has run for
//! [`INTERRUPTED_AFTER`] without an end. A call without that record (another client) stays
//! `running`. Queries that filter or sort on `summary.weave.status` run in the store, which
//! cannot see processes: there an interrupted call still counts as `running`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::{CallSchema, JsonMap};

/// Status of a call, as Weave shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Finished without error, and so did every descendant.
    Success,
    /// Finished with an error.
    Error,
    /// Not finished.
    Running,
    /// Finished without error, but a descendant failed.
    DescendantError,
    /// Not finished, and never will be: the process writing it is gone (see the module
    /// docs for how that is known).
    Interrupted,
}

impl CallStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Success => "success",
            CallStatus::Error => "error",
            CallStatus::Running => "running",
            CallStatus::DescendantError => "descendant_error",
            CallStatus::Interrupted => "interrupted",
        }
    }
}

/// `error` if there is an exception; else `running` without an end; else
/// `descendant_error` if `summary.status_counts.error > 0`; else `success`.
pub fn call_status(
    exception: Option<&str>,
    ended_at: Option<&str>,
    summary: &JsonMap,
) -> CallStatus {
    if exception.is_some() {
        CallStatus::Error
    } else if ended_at.is_none() {
        CallStatus::Running
    } else if summary
        .get("status_counts")
        .and_then(|c| c.get("error"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        > 0
    {
        CallStatus::DescendantError
    } else {
        CallStatus::Success
    }
}

/// How long a call recorded on another machine may run without an end before readers call it
/// interrupted (its process cannot be checked from here).
pub const INTERRUPTED_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The process that wrote a call, as recorded in `attributes.weave`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterProcess {
    /// Host name.
    pub host: String,
    /// Linux boot id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Process id.
    pub process_id: u32,
    /// Start time of the process, in clock ticks after boot (`/proc/<pid>/stat` field 22):
    /// with the boot id, it tells the process apart from a later one given the same pid.
    pub process_start: u64,
}

/// A process's start time in clock ticks after boot, from `/proc/<pid>/stat`.
fn process_start(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; field 22 is the
    // 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// This machine: host name and boot id (Linux only).
fn this_machine() -> Option<&'static (String, String)> {
    static MACHINE: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
    MACHINE
        .get_or_init(|| {
            Some((
                read_trimmed("/proc/sys/kernel/hostname")?,
                read_trimmed("/proc/sys/kernel/random/boot_id")?,
            ))
        })
        .as_ref()
}

impl WriterProcess {
    /// This process (`None` where `/proc` does not tell: not Linux).
    pub fn this_process() -> Option<WriterProcess> {
        let (host, boot_id) = this_machine()?.clone();
        Some(WriterProcess {
            host,
            boot_id,
            process_id: std::process::id(),
            process_start: process_start("self")?,
        })
    }

    /// Reads it from a call's attributes (`attributes.weave`).
    pub fn from_attributes(attributes: &JsonMap) -> Option<WriterProcess> {
        let w = attributes.get("weave")?;
        Some(WriterProcess {
            host: w.get("host")?.as_str()?.to_string(),
            boot_id: w.get("boot_id")?.as_str()?.to_string(),
            process_id: u32::try_from(w.get("process_id")?.as_u64()?).ok()?,
            process_start: w.get("process_start")?.as_u64()?,
        })
    }

    /// Whether the process still runs: `None` when that cannot be known from here (another
    /// machine); `Some(false)` when it ran in an earlier boot of this machine.
    pub fn alive(&self) -> Option<bool> {
        let (host, boot_id) = this_machine()?;
        if *host != self.host {
            return None;
        }
        if *boot_id != self.boot_id {
            return Some(false);
        }
        Some(process_start(&self.process_id.to_string()) == Some(self.process_start))
    }
}

/// The status of a call as readers show it: [`call_status`], except that a call without an
/// end whose writer is gone is [`CallStatus::Interrupted`] (rule in the module docs). `now`
/// is microseconds since the Unix epoch.
pub fn call_status_now(call: &CallSchema, now_micros: i64) -> CallStatus {
    let status = call_status(
        call.exception.as_deref(),
        call.ended_at.as_deref(),
        &call.summary,
    );
    if status != CallStatus::Running {
        return status;
    }
    let Some(writer) = WriterProcess::from_attributes(&call.attributes) else {
        return status;
    };
    match writer.alive() {
        Some(true) => CallStatus::Running,
        Some(false) => CallStatus::Interrupted,
        None => {
            let started = crate::time::parse_micros(&call.started_at).unwrap_or(now_micros);
            if now_micros.saturating_sub(started) > INTERRUPTED_AFTER.as_micros() as i64 {
                CallStatus::Interrupted
            } else {
                CallStatus::Running
            }
        }
    }
}

/// Microseconds since the Unix epoch, now.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Whole milliseconds from start to end, when both parse.
pub fn latency_ms(started_at: &str, ended_at: Option<&str>) -> Option<i64> {
    let start = crate::time::parse_micros(started_at).ok()?;
    let end = crate::time::parse_micros(ended_at?).ok()?;
    Some((end - start).div_euclid(1000))
}

/// The `summary.weave` object of a call: `status`, then `display_name` when the call has
/// one or else `trace_name` (the op's name), then `latency_ms` when it ended.
pub fn summary_weave(call: &CallSchema) -> JsonMap {
    let mut w = JsonMap::new();
    w.insert(
        "status".into(),
        Value::from(call_status_now(call, now_micros()).as_str()),
    );
    match &call.display_name {
        Some(d) => w.insert("display_name".into(), Value::from(d.clone())),
        None => w.insert("trace_name".into(), Value::from(call.op_display_name())),
    };
    if let Some(ms) = call.latency_ms() {
        w.insert("latency_ms".into(), Value::from(ms));
    }
    w
}

/// Sets `summary.weave` (replacing whatever a client put there).
pub fn add_summary_weave(call: &mut CallSchema) {
    let w = summary_weave(call);
    call.summary.insert("weave".into(), Value::Object(w));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(exception: Option<&str>, ended: Option<&str>, summary: Value) -> CallSchema {
        CallSchema {
            id: "c".into(),
            project_id: "e/p".into(),
            op_name: "weave:///myent/myproj/op/outer_compute:0YAj".into(),
            trace_id: "t".into(),
            started_at: "2026-11-29T14:20:07.585080Z".into(),
            ended_at: ended.map(str::to_string),
            exception: exception.map(str::to_string),
            summary: summary.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn derives_like_the_recorded_server() {
        // session.jsonl seq 38: status success, trace_name, latency 5 ms.
        let mut c = call(
            None,
            Some("2026-11-29T14:20:07.590244Z"),
            json!({"status_counts": {"success": 3, "error": 0}}),
        );
        add_summary_weave(&mut c);
        assert_eq!(
            Value::Object(c.summary.clone()),
            json!({"status_counts": {"success": 3, "error": 0},
                   "weave": {"status": "success", "trace_name": "outer_compute", "latency_ms": 5}})
        );
        c.display_name = Some("renamed outer call".into());
        add_summary_weave(&mut c);
        assert_eq!(
            c.summary["weave"],
            json!({"status": "success", "display_name": "renamed outer call", "latency_ms": 5})
        );
    }

    #[test]
    fn statuses() {
        let end = Some("2026-11-29T14:20:07.590244Z");
        assert_eq!(call(Some("{}"), end, json!({})).status(), CallStatus::Error);
        assert_eq!(call(None, None, json!({})).status(), CallStatus::Running);
        assert_eq!(
            call(None, end, json!({"status_counts": {"error": 2}})).status(),
            CallStatus::DescendantError
        );
        assert_eq!(call(None, end, json!({})).status(), CallStatus::Success);
        let running = call(None, None, json!({}));
        assert_eq!(summary_weave(&running).get("latency_ms"), None);
    }

    fn written_by(w: &WriterProcess, started_at: &str) -> CallSchema {
        let mut c = call(None, None, json!({}));
        c.started_at = started_at.into();
        c.attributes = json!({"weave": {
            "source": "rust-sdk", "host": w.host, "boot_id": w.boot_id,
            "process_id": w.process_id, "process_start": w.process_start,
        }})
        .as_object()
        .cloned()
        .unwrap_or_default();
        c
    }

    #[test]
    fn a_call_whose_process_is_gone_is_interrupted() {
        let Some(me) = WriterProcess::this_process() else {
            return; // not Linux: nothing to check processes with
        };
        let now = now_micros();
        let started = crate::time::format_micros(now);
        // This process is alive.
        let c = written_by(&me, &started);
        assert_eq!(call_status_now(&c, now), CallStatus::Running);
        assert_eq!(c.status(), CallStatus::Running);
        // A process that ran here and is gone: a child, reaped.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let start = process_start(&pid.to_string());
        child.wait().expect("wait");
        let gone = WriterProcess {
            process_id: pid,
            process_start: start.unwrap_or(1),
            ..me.clone()
        };
        let c = written_by(&gone, &started);
        assert_eq!(call_status_now(&c, now), CallStatus::Interrupted);
        assert_eq!(summary_weave(&c)["status"], "interrupted");
        // Our pid, but a different start time: a pid reused after the writer died.
        let reused = WriterProcess {
            process_start: me.process_start + 1,
            ..me.clone()
        };
        assert_eq!(
            call_status_now(&written_by(&reused, &started), now),
            CallStatus::Interrupted
        );
        // Another boot of this machine: gone.
        let rebooted = WriterProcess {
            boot_id: "another-boot".into(),
            ..me.clone()
        };
        assert_eq!(
            call_status_now(&written_by(&rebooted, &started), now),
            CallStatus::Interrupted
        );
        // Another machine: running until INTERRUPTED_AFTER has passed.
        let elsewhere = WriterProcess {
            host: "elsewhere".into(),
            ..me.clone()
        };
        let c = written_by(&elsewhere, &started);
        assert_eq!(call_status_now(&c, now), CallStatus::Running);
        let later = now + INTERRUPTED_AFTER.as_micros() as i64 + 1;
        assert_eq!(call_status_now(&c, later), CallStatus::Interrupted);
        // No writer recorded (another client): running, however old.
        let c = call(None, None, json!({}));
        assert_eq!(call_status_now(&c, later), CallStatus::Running);
        // Ended calls are not affected.
        let mut c = written_by(&gone, &started);
        c.ended_at = Some(started.clone());
        assert_eq!(call_status_now(&c, now), CallStatus::Success);
    }
}
