//! OpenTelemetry spans for create, start, run, exec, stop and rm, exported over OTLP/HTTP
//! when `NUCLEUS_OTLP_ENDPOINT` is set (nothing is done otherwise). Every span of one sandbox
//! belongs to one trace: its `create` span's, kept in the sandbox's record; a caller's
//! `TRACEPARENT` (W3C) makes that trace a child of the caller's. Export is one blocking POST
//! at the end of the command (2 s timeout); a failure is one warning, never a failed command.

use crate::log::Logger;
use nucleus_spec::config::ConfigError;
use nucleus_spec::otlp::{self, Attr, Endpoint, Span};

pub(crate) const ENDPOINT_VAR: &str = "NUCLEUS_OTLP_ENDPOINT";

pub(crate) use nucleus_sys::trace::now_ns;

pub(crate) fn span_id() -> [u8; 8] {
    let mut b = [0u8; 8];
    nucleus_sys::raw::fill_random(&mut b);
    b
}

pub(crate) struct Tracer {
    endpoint: Option<Endpoint>,
    pub trace: [u8; 16],
    /// Parent of the spans recorded without an explicit one.
    pub parent: Option<[u8; 8]>,
    spans: Vec<Span>,
}

impl Tracer {
    /// From the environment; `sandbox_trace` (a sandbox's stored traceparent) wins over the
    /// caller's `TRACEPARENT`.
    pub(crate) fn from_env(sandbox_trace: Option<&str>) -> Result<Tracer, ConfigError> {
        let endpoint = match std::env::var(ENDPOINT_VAR) {
            Ok(v) if !v.is_empty() => Some(Endpoint::parse(ENDPOINT_VAR, &v)?),
            _ => None,
        };
        if endpoint.is_none() {
            // Nothing is exported: no ids to draw, no trace to keep.
            return Ok(Tracer {
                endpoint,
                trace: [0; 16],
                parent: None,
                spans: vec![],
            });
        }
        let inherited = sandbox_trace.and_then(otlp::parse_traceparent).or_else(|| {
            std::env::var("TRACEPARENT")
                .ok()
                .and_then(|t| otlp::parse_traceparent(&t))
        });
        let (trace, parent) = match inherited {
            Some((t, p)) => (t, Some(p)),
            None => {
                let mut t = [0u8; 16];
                nucleus_sys::raw::fill_random(&mut t);
                (t, None)
            }
        };
        Ok(Tracer {
            endpoint,
            trace,
            parent,
            spans: vec![],
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }

    /// A new span id for a sandbox's root span, and the traceparent its record keeps so later
    /// commands' spans become its children (none when nothing is exported).
    pub(crate) fn sandbox_span(&self) -> ([u8; 8], Option<String>) {
        if !self.enabled() {
            return ([0; 8], None);
        }
        let id = span_id();
        (id, Some(otlp::traceparent(&self.trace, &id)))
    }

    /// Record a finished span with a given id and parent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_as(
        &mut self,
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        name: &str,
        start_ns: u64,
        end_ns: u64,
        attrs: Vec<(&str, Attr)>,
        error: Option<String>,
    ) {
        if !self.enabled() {
            return;
        }
        self.spans.push(Span {
            trace_id: self.trace,
            span_id: id,
            parent,
            name: name.into(),
            start_ns,
            end_ns,
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            error,
        });
    }

    /// Record a finished span under the default parent.
    pub(crate) fn record(
        &mut self,
        name: &str,
        start_ns: u64,
        attrs: Vec<(&str, Attr)>,
        error: Option<String>,
    ) {
        let parent = self.parent;
        self.record_as(span_id(), parent, name, start_ns, now_ns(), attrs, error);
    }

    /// Send what was recorded.
    pub(crate) fn flush(&mut self, log: &Logger) {
        let Some(e) = &self.endpoint else { return };
        if self.spans.is_empty() {
            return;
        }
        let body = otlp::encode_export("nucleus", env!("CARGO_PKG_VERSION"), &self.spans);
        self.spans.clear();
        if let Err(err) = nucleus_sys::otlp::post(e, &body, std::time::Duration::from_secs(2)) {
            log.warn(&format!(
                "OTLP export to http://{}:{}{} failed: {err}",
                e.host, e.port, e.path
            ));
        }
    }
}

pub(crate) fn s(v: impl Into<String>) -> Attr {
    Attr::Str(v.into())
}

/// The outcome of a command as a span status.
pub(crate) fn outcome(r: &anyhow::Result<u8>) -> (Option<i64>, Option<String>) {
    match r {
        Ok(0) => (Some(0), None),
        Ok(c) => (Some(i64::from(*c)), Some(format!("exit status {c}"))),
        Err(e) => (None, Some(crate::one_line(e))),
    }
}
