//! Asking systemd for a container's cgroup (`--systemd-cgroup`): one D-Bus method call,
//! `org.freedesktop.systemd1.Manager.StartTransientUnit`, on systemd's private socket
//! (`/run/systemd/private`: root's direct line to PID 1, no bus daemon needed).
//!
//! The protocol is written here for that one call (SASL EXTERNAL, one message out, its reply
//! in) rather than with zbus, which would bring an async runtime into the static binary for
//! it. The peer is PID 1, not the container; replies are still read bounded and parsed
//! defensively.

use crate::error::{other, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const SOCKET: &str = "/run/systemd/private";
/// The largest reply read (a method return or error is a few hundred bytes).
const MAX_REPLY: usize = 64 << 10;

/// A D-Bus message body or header under construction (little-endian; alignment is from the
/// start of the buffer, which starts 8-aligned in the message).
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn pad(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A string or object path.
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements align to `align`: its byte length, then `f`'s elements.
    fn array(&mut self, align: usize, f: impl FnOnce(&mut Self)) {
        self.u32(0);
        let at = self.buf.len() - 4;
        self.pad(align);
        let start = self.buf.len();
        f(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// A unit property's value.
pub enum Value<'a> {
    Str(&'a str),
    Bool(bool),
    U64(u64),
    Pids(&'a [u32]),
    /// A byte array (`ay`: a CPU or memory-node mask).
    Bytes(&'a [u8]),
}

fn property(e: &mut Enc, name: &str, v: &Value<'_>) {
    e.pad(8);
    e.str(name);
    match v {
        Value::Str(s) => {
            e.sig("s");
            e.str(s);
        }
        Value::Bool(b) => {
            e.sig("b");
            e.u32(u32::from(*b));
        }
        Value::U64(n) => {
            e.sig("t");
            e.u64(*n);
        }
        Value::Pids(p) => {
            e.sig("au");
            e.array(4, |e| p.iter().for_each(|p| e.u32(*p)));
        }
        Value::Bytes(b) => {
            e.sig("ay");
            e.array(1, |e| b.iter().for_each(|b| e.u8(*b)));
        }
    }
}

/// The StartTransientUnit call: header and body, serial 1.
fn start_transient_unit(unit: &str, props: &[(&str, Value<'_>)]) -> Vec<u8> {
    let mut body = Enc::default();
    body.str(unit);
    body.str("fail");
    body.array(8, |e| props.iter().for_each(|(n, v)| property(e, n, v)));
    body.array(8, |_| {});
    method_call("StartTransientUnit", "ssa(sv)a(sa(sv))", body)
}

/// The SetUnitProperties call (runtime: until the unit goes): header and body, serial 1.
fn set_unit_properties(unit: &str, props: &[(&str, Value<'_>)]) -> Vec<u8> {
    let mut body = Enc::default();
    body.str(unit);
    body.u32(1);
    body.array(8, |e| props.iter().for_each(|(n, v)| property(e, n, v)));
    method_call("SetUnitProperties", "sba(sv)", body)
}

/// A call of the manager's `member` with `body` (of `signature`): the whole message.
fn method_call(member: &str, signature: &str, body: Enc) -> Vec<u8> {
    let mut h = Enc::default();
    for b in [b'l', 1, 0, 1] {
        h.u8(b);
    }
    h.u32(body.buf.len() as u32);
    h.u32(1);
    let field = |h: &mut Enc, code: u8, sig: &str, val: &str| {
        h.pad(8);
        h.u8(code);
        h.sig(sig);
        if sig == "g" {
            h.sig(val);
        } else {
            h.str(val);
        }
    };
    h.array(8, |h| {
        field(h, 1, "o", "/org/freedesktop/systemd1");
        field(h, 2, "s", "org.freedesktop.systemd1.Manager");
        field(h, 3, "s", member);
        field(h, 6, "s", "org.freedesktop.systemd1");
        field(h, 8, "g", signature);
    });
    h.pad(8);
    h.buf.extend_from_slice(&body.buf);
    h.buf
}

/// A reply's header: (type, reply serial, error name), and its body.
struct Reply {
    kind: u8,
    reply_serial: Option<u32>,
    error: Option<String>,
    body: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A string at `at` (aligned to 4 first): (text, the offset after it).
fn str_at(b: &[u8], at: usize) -> Option<(String, usize)> {
    let at = at.next_multiple_of(4);
    let n = u32_at(b, at)? as usize;
    let s = b.get(at + 4..at.checked_add(4 + n)?)?;
    Some((String::from_utf8_lossy(s).into_owned(), at + 4 + n + 1))
}

/// Parse one whole message (little-endian only: what systemd sends on this machine's
/// architecture). None: not a well-formed message.
fn parse(m: &[u8]) -> Option<Reply> {
    if m.first() != Some(&b'l') {
        return None;
    }
    let kind = *m.get(1)?;
    let body_len = u32_at(m, 4)? as usize;
    let fields_len = u32_at(m, 12)? as usize;
    let end = 16usize.checked_add(fields_len)?;
    let mut at = 16;
    let (mut reply_serial, mut error) = (None, None);
    while at < end {
        at = at.next_multiple_of(8);
        let code = *m.get(at)?;
        let sig_len = *m.get(at + 1)? as usize;
        let sig = m.get(at + 2..at + 2 + sig_len)?;
        at += 2 + sig_len + 1;
        match sig {
            b"u" => {
                at = at.next_multiple_of(4);
                let v = u32_at(m, at)?;
                at += 4;
                if code == 5 {
                    reply_serial = Some(v);
                }
            }
            b"s" | b"o" => {
                let (v, next) = str_at(m, at)?;
                at = next;
                if code == 4 {
                    error = Some(v);
                }
            }
            b"g" => {
                let n = *m.get(at)? as usize;
                at += 1 + n + 1;
            }
            _ => return None,
        }
    }
    let body_at = end.next_multiple_of(8);
    let body = m.get(body_at..body_at.checked_add(body_len)?)?.to_vec();
    Some(Reply {
        kind,
        reply_serial,
        error,
        body,
    })
}

/// The length of the message at the start of `b`, once its fixed header is there.
fn message_len(b: &[u8]) -> Option<usize> {
    let body = u32_at(b, 4)? as usize;
    let fields = u32_at(b, 12)? as usize;
    (16 + fields).next_multiple_of(8).checked_add(body)
}

/// Start transient unit `unit` with `props` and wait for systemd's answer to the call.
pub fn start_unit(unit: &str, props: &[(&str, Value<'_>)]) -> Result<()> {
    call(&start_transient_unit(unit, props))
        .map_err(|why| other("systemd", format!("start {unit}: {why}")))
}

/// Change running unit `unit`'s `props` (`update` of a container under systemd's driver:
/// systemd writes the unit's cgroup attributes from these, and would revert bare files).
pub fn set_properties(unit: &str, props: &[(&str, Value<'_>)]) -> Result<()> {
    call(&set_unit_properties(unit, props))
        .map_err(|why| other("systemd", format!("set properties of {unit}: {why}")))
}

/// Send `message` (serial 1) on systemd's private socket and wait for its answer. Err: why
/// it failed, in words.
fn call(message: &[u8]) -> std::result::Result<(), String> {
    let call = |s: &mut UnixStream| -> std::io::Result<std::result::Result<(), String>> {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        // SASL: EXTERNAL as our uid (hex of its decimal text).
        let uid: String = crate::security::euid()
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        s.write_all(format!("\0AUTH EXTERNAL {uid}\r\n").as_bytes())?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 512 {
            s.read_exact(&mut byte)?;
            line.push(byte[0]);
        }
        if !line.starts_with(b"OK ") {
            return Ok(Err(format!(
                "authentication refused: {}",
                String::from_utf8_lossy(&line).trim()
            )));
        }
        s.write_all(b"BEGIN\r\n")?;
        s.write_all(message)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(n) = message_len(&buf).filter(|n| buf.len() >= *n) {
                let msg: Vec<u8> = buf.drain(..n).collect();
                let Some(r) = parse(&msg) else {
                    return Ok(Err("a malformed reply".into()));
                };
                if r.reply_serial != Some(1) {
                    continue; // (a signal: not ours)
                }
                return Ok(match (r.kind, r.error) {
                    (2, _) => Ok(()),
                    (_, Some(name)) => {
                        let why = str_at(&r.body, 0).map(|(s, _)| s).unwrap_or_default();
                        Err(format!("{name}: {why}"))
                    }
                    _ => Err("an unexpected reply".into()),
                });
            }
            if buf.len() > MAX_REPLY {
                return Ok(Err("an oversized reply".into()));
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Ok(Err("systemd closed the connection".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    UnixStream::connect(Path::new(SOCKET))
        .and_then(|mut s| call(&mut s))
        .map_err(|e| format!("{SOCKET}: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call's bytes as the D-Bus specification lays them out, read back by the parser
    /// the replies go through (the end-to-end test has systemd itself read it).
    #[test]
    fn the_call_is_a_well_formed_message() {
        let m = start_transient_unit(
            "x.scope",
            &[
                ("Slice", Value::Str("system.slice")),
                ("Delegate", Value::Bool(true)),
                ("PIDs", Value::Pids(&[42])),
                ("MemoryMax", Value::U64(1 << 26)),
            ],
        );
        assert_eq!(&m[..4], &[b'l', 1, 0, 1]);
        assert_eq!(message_len(&m), Some(m.len()));
        let r = parse(&m).unwrap();
        assert_eq!(r.kind, 1);
        // Body: unit, mode, then the properties array (8-aligned elements).
        let (unit, at) = str_at(&r.body, 0).unwrap();
        let (mode, at) = str_at(&r.body, at).unwrap();
        assert_eq!((unit.as_str(), mode.as_str()), ("x.scope", "fail"));
        let len = u32_at(&r.body, at.next_multiple_of(4)).unwrap() as usize;
        let start = (at.next_multiple_of(4) + 4).next_multiple_of(8);
        let props = &r.body[start..start + len];
        assert_eq!(str_at(props, 0).unwrap().0, "Slice");
        let text = String::from_utf8_lossy(props);
        for name in ["Delegate", "PIDs", "MemoryMax", "system.slice"] {
            assert!(text.contains(name), "{name}");
        }
        // The u64 is 8-aligned in the message and little-endian.
        let i = props.windows(9).position(|w| w == b"MemoryMax").unwrap();
        let v = (start + i + 10 + 3).next_multiple_of(8);
        assert_eq!(u32_at(&r.body, v), Some(1 << 26));
        // The last array (aux units) is empty.
        assert_eq!(u32_at(&r.body, start + len), Some(0));
        // SetUnitProperties: the unit, runtime=true, the properties; a mask as bytes.
        let m = set_unit_properties("x.scope", &[("AllowedCPUs", Value::Bytes(&[0b101]))]);
        let r = parse(&m).unwrap();
        let (unit, at) = str_at(&r.body, 0).unwrap();
        assert_eq!(
            (unit.as_str(), u32_at(&r.body, at.next_multiple_of(4))),
            ("x.scope", Some(1))
        );
        assert!(r.body.ends_with(&[1, 0, 0, 0, 0b101]), "{:?}", r.body);
        // Truncated and foreign messages are rejected, not read past.
        assert!(parse(&m[..m.len() - 1]).is_none());
        let mut be = m.clone();
        be[0] = b'B';
        assert!(parse(&be).is_none());
    }
}
