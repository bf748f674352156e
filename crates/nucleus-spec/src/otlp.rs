//! OpenTelemetry traces as plain data, and their OTLP/HTTP protobuf encoding
//! (`ExportTraceServiceRequest`, opentelemetry-proto `collector/trace/v1`). Only the few
//! fields nucleus sends are encoded; field numbers are those of the .proto files.

use crate::config::ConfigError;

/// A finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(String, Attr)>,
    /// Set when the operation failed: the span's status is ERROR with this message.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Where to send: `http://HOST[:PORT][/PATH]` (OTLP/HTTP; the path defaults to /v1/traces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Endpoint {
    pub fn parse(var: &str, s: &str) -> Result<Endpoint, ConfigError> {
        let bad = |why: &str| ConfigError::new(var, format!("{s:?}: {why}"));
        let rest = s.strip_prefix("http://").ok_or_else(|| {
            bad("only http:// endpoints are supported (an OTLP/HTTP collector, e.g. http://127.0.0.1:4318)")
        })?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port must be a number 1-65535"))?,
            ),
            _ => (hostport, 4318),
        };
        if host.is_empty() || port == 0 {
            return Err(bad("give a host and port"));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/v1/traces".to_string(),
            p if p.ends_with("/v1/traces") => p.to_string(),
            p => format!("{p}/v1/traces"),
        };
        Ok(Endpoint {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            path,
        })
    }
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

use crate::hex;

/// A W3C `traceparent` (`00-TRACEID-SPANID-FLAGS`): the trace and the parent span.
pub fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut p = s.trim().split('-');
    let (v, t, sp, _flags) = (p.next()?, p.next()?, p.next()?, p.next()?);
    if v != "00" {
        return None;
    }
    let t = hex_bytes::<16>(t)?;
    let sp = hex_bytes::<8>(sp)?;
    (t != [0; 16] && sp != [0; 8]).then_some((t, sp))
}

pub fn traceparent(trace: &[u8; 16], span: &[u8; 8]) -> String {
    format!("00-{}-{}-01", hex(trace), hex(span))
}

// Protobuf wire format: a key is (field << 3 | wire type); 0 varint, 1 fixed64, 2 bytes.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

/// `KeyValue { string key = 1; AnyValue value = 2; }`,
/// `AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; }`.
fn key_value(k: &str, v: &Attr) -> Vec<u8> {
    let mut any = Vec::new();
    match v {
        Attr::Str(s) => bytes(&mut any, 1, s.as_bytes()),
        Attr::Bool(b) => uint(&mut any, 2, u64::from(*b)),
        Attr::Int(i) => uint(&mut any, 3, *i as u64),
    }
    let mut kv = Vec::new();
    bytes(&mut kv, 1, k.as_bytes());
    bytes(&mut kv, 2, &any);
    kv
}

/// `Span`: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8,
/// attributes 9, status 15 (`Status { string message = 2; StatusCode code = 3; }`).
fn span(s: &Span) -> Vec<u8> {
    let mut o = Vec::new();
    bytes(&mut o, 1, &s.trace_id);
    bytes(&mut o, 2, &s.span_id);
    if let Some(p) = &s.parent {
        bytes(&mut o, 4, p);
    }
    bytes(&mut o, 5, s.name.as_bytes());
    uint(&mut o, 6, 1); // SPAN_KIND_INTERNAL
    fixed64(&mut o, 7, s.start_ns);
    fixed64(&mut o, 8, s.end_ns.max(s.start_ns));
    for (k, v) in &s.attrs {
        bytes(&mut o, 9, &key_value(k, v));
    }
    let mut st = Vec::new();
    match &s.error {
        Some(m) => {
            bytes(&mut st, 2, m.as_bytes());
            uint(&mut st, 3, 2); // STATUS_CODE_ERROR
        }
        None => uint(&mut st, 3, 1), // STATUS_CODE_OK
    }
    bytes(&mut o, 15, &st);
    o
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }` with one
/// `ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }`,
/// `Resource { repeated KeyValue attributes = 1; }`,
/// `ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }`,
/// `InstrumentationScope { string name = 1; string version = 2; }`.
pub fn encode_export(service: &str, version: &str, spans: &[Span]) -> Vec<u8> {
    let mut resource = Vec::new();
    bytes(
        &mut resource,
        1,
        &key_value("service.name", &Attr::Str(service.into())),
    );
    bytes(
        &mut resource,
        1,
        &key_value("service.version", &Attr::Str(version.into())),
    );
    let mut scope = Vec::new();
    bytes(&mut scope, 1, b"nucleus");
    bytes(&mut scope, 2, version.as_bytes());
    let mut scope_spans = Vec::new();
    bytes(&mut scope_spans, 1, &scope);
    for s in spans {
        bytes(&mut scope_spans, 2, &span(s));
    }
    let mut rs = Vec::new();
    bytes(&mut rs, 1, &resource);
    bytes(&mut rs, 2, &scope_spans);
    let mut req = Vec::new();
    bytes(&mut req, 1, &rs);
    req
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("V", "http://127.0.0.1:4318").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 4318, "/v1/traces")
        );
        let e = Endpoint::parse("V", "http://collector/otlp/").unwrap();
        assert_eq!((e.port, e.path.as_str()), (4318, "/otlp/v1/traces"));
        let e = Endpoint::parse("V", "http://[::1]:9/v1/traces").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        for bad in [
            "https://x",
            "x:1",
            "http://:1",
            "http://h:99999",
            "http://h:0",
        ] {
            assert!(Endpoint::parse("V", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn traceparents() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (tr, sp) = parse_traceparent(t).unwrap();
        assert_eq!(traceparent(&tr, &sp), t);
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(parse_traceparent("00-4bf9-00f067aa0ba902b7-01").is_none());
    }

    #[test]
    fn wire_format() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        // KeyValue{key:"a", value:{int_value:1}} = 0a 01 61 12 02 18 01
        assert_eq!(
            key_value("a", &Attr::Int(1)),
            [0x0a, 1, b'a', 0x12, 2, 0x18, 1]
        );
        let s = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            name: "x".into(),
            start_ns: 5,
            end_ns: 7,
            attrs: vec![],
            error: None,
        };
        let b = span(&s);
        assert_eq!(&b[..2], &[0x0a, 16]);
        assert!(
            b.windows(9).any(|w| w == [0x39, 5, 0, 0, 0, 0, 0, 0, 0]),
            "start fixed64"
        );
        let req = encode_export("nucleus", "0.1.0", &[s]);
        assert_eq!(req[0], 0x0a);
    }
}
