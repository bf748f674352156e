//! `nucleus mcp`'s protocol half: the Model Context Protocol's JSON-RPC messages as decisions
//! (what to answer, which tool to run with which checked arguments), no I/O. The binary reads
//! lines, asks [`Conn::handle`], runs the tools and sends what [`Conn::result`] shapes.
//!
//! Both eras of the protocol are served, decided once per connection by its first request as
//! the official SDKs do: the `initialize` handshake (2024-11-05 … 2025-11-25), or the
//! 2026-07-28 per-request envelope (`params._meta` carries the protocol version and the
//! client's capabilities; `server/discover` instead of a handshake; every result says its
//! `resultType`).

use serde_json::{json, Map, Value};

/// Revisions reached through the `initialize` handshake, newest first.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Revisions with the per-request envelope.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPS_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC error codes (and MCP's own).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn to_json(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// One message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response to a request of ours (the server sends none; ignored).
    Response,
}

/// Decode one line. An error comes with the id to answer it under (null when unknown).
pub fn parse(line: &str) -> Result<Incoming, (Value, RpcError)> {
    let v: Value = serde_json::from_str(line).map_err(|e| {
        (
            Value::Null,
            RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    let Value::Object(m) = v else {
        let what = if v.is_array() {
            "batches are not supported (one JSON-RPC object per line)"
        } else {
            "a JSON-RPC message is an object"
        };
        return Err((Value::Null, RpcError::new(code::INVALID_REQUEST, what)));
    };
    let id = m.get("id").cloned();
    let bad = |id: Option<Value>, msg: &str| {
        let id = match id {
            Some(i @ (Value::String(_) | Value::Number(_))) => i,
            _ => Value::Null,
        };
        Err((id, RpcError::new(code::INVALID_REQUEST, msg)))
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad(id, "jsonrpc must be \"2.0\"");
    }
    let params = m.get("params").cloned();
    if params.as_ref().is_some_and(|p| !p.is_object()) {
        return bad(id, "params must be an object");
    }
    match (m.get("method"), id) {
        (Some(Value::String(method)), None) => Ok(Incoming::Notification {
            method: method.clone(),
            params,
        }),
        (Some(Value::String(method)), Some(id)) => match id {
            Value::String(_) => Ok(Incoming::Request {
                id,
                method: method.clone(),
                params,
            }),
            Value::Number(ref n) if n.is_i64() || n.is_u64() => Ok(Incoming::Request {
                id,
                method: method.clone(),
                params,
            }),
            _ => bad(None, "id must be a string or an integer"),
        },
        (Some(_), id) => bad(id, "method must be a string"),
        (None, Some(_)) if m.contains_key("result") || m.contains_key("error") => {
            Ok(Incoming::Response)
        }
        (None, id) => bad(id, "a request needs a method"),
    }
}

/// A JSON-RPC response line (no trailing newline).
pub fn response(id: &Value, r: Result<Value, RpcError>) -> String {
    match r {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    }
    .to_string()
}

/// The protocol era of a connection, fixed by its first request.
#[derive(Debug, Clone, PartialEq)]
enum Era {
    Open,
    Handshake { version: String },
    Modern,
}

/// Who the server is, told to clients.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub instructions: String,
}

/// What the binary does with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Answer the request with this result (already shaped with [`Conn::result`]).
    Reply(Value),
    /// Answer the request with this error.
    Fail(RpcError),
    /// Run the tool, then answer with [`Conn::result`] of its `CallToolResult`.
    Call(ToolCall),
    /// Stop the call with this request id; answer nothing for it.
    Cancel(Value),
    /// Nothing to do (a notification).
    Nothing,
}

/// One connection's protocol state.
#[derive(Debug, Clone)]
pub struct Conn {
    era: Era,
    info: ServerInfo,
    limits: Limits,
}

/// What the operator allows a tool call (the model's arguments are bounded by these).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A command's time limit when the call gives none.
    pub default_timeout_ms: u64,
    /// The longest time limit a call may ask for.
    pub max_timeout_ms: u64,
    /// The most bytes of output (each of stdout and stderr, or a file read) a call returns.
    pub max_output: u64,
    /// The most bytes a call may write (a file's content, a command's input).
    pub max_input: u64,
}

impl Conn {
    pub fn new(info: ServerInfo, limits: Limits) -> Self {
        Conn {
            era: Era::Open,
            info,
            limits,
        }
    }

    /// The negotiated protocol version (None before the first request).
    pub fn version(&self) -> Option<&str> {
        match &self.era {
            Era::Open => None,
            Era::Handshake { version } => Some(version),
            Era::Modern => Some(MODERN_VERSIONS[0]),
        }
    }

    fn capabilities(&self) -> Value {
        json!({ "tools": { "listChanged": false } })
    }

    /// Shape a result for the connection's era: the 2026-07-28 wire wants `resultType` on
    /// every result and the server's identity in `_meta`.
    pub fn result(&self, mut r: Value) -> Value {
        if self.era == Era::Modern {
            if let Value::Object(m) = &mut r {
                m.entry("resultType").or_insert_with(|| "complete".into());
                let meta = m.entry("_meta").or_insert_with(|| json!({}));
                if let Value::Object(meta) = meta {
                    meta.insert(
                        SERVER_INFO_KEY.into(),
                        json!({ "name": self.info.name, "version": self.info.version }),
                    );
                }
            }
        }
        r
    }

    fn cacheable(&self, mut r: Value) -> Value {
        if self.era == Era::Modern {
            r["ttlMs"] = 0.into();
            r["cacheScope"] = "public".into();
        }
        self.result(r)
    }

    /// Decide what a message asks for.
    pub fn handle(&mut self, msg: Incoming) -> Step {
        match msg {
            Incoming::Response => Step::Nothing,
            Incoming::Notification { method, params } => {
                if method == "notifications/cancelled" {
                    if let Some(id) = params.as_ref().and_then(|p| p.get("requestId")) {
                        return Step::Cancel(id.clone());
                    }
                }
                Step::Nothing
            }
            Incoming::Request { method, params, .. } => match self.request(&method, params) {
                Ok(s) => s,
                Err(e) => Step::Fail(e),
            },
        }
    }

    fn request(&mut self, method: &str, params: Option<Value>) -> Result<Step, RpcError> {
        let enveloped = params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(VERSION_KEY));
        match (&self.era, method) {
            (Era::Open | Era::Handshake { .. }, "initialize") => {
                return self.initialize(params.as_ref()).map(Step::Reply)
            }
            (Era::Modern, "initialize") => {
                let mut e = RpcError::new(
                    code::UNSUPPORTED_PROTOCOL_VERSION,
                    "this connection speaks the 2026-07-28 protocol: no initialize handshake",
                );
                e.data = Some(json!({ "supported": MODERN_VERSIONS }));
                return Err(e);
            }
            (Era::Open, _) if enveloped => self.era = Era::Modern,
            (Era::Open, "ping") => return Ok(Step::Reply(json!({}))),
            (Era::Open, "server/discover") => {
                // Discovery without the envelope: say what is served (the client then either
                // sends enveloped requests or falls back to initialize).
                return Ok(Step::Reply(self.discover()));
            }
            (Era::Open, _) => {
                return Err(RpcError::new(
                    code::INVALID_REQUEST,
                    "send initialize first (or use the 2026-07-28 request envelope)",
                ))
            }
            (Era::Handshake { .. }, _) if enveloped => {
                return Err(RpcError::new(
                    code::INVALID_REQUEST,
                    "this connection was initialized with the handshake: no 2026-07-28 envelope",
                ))
            }
            _ => {}
        }
        if self.era == Era::Modern {
            envelope(params.as_ref())?;
        }
        let params = params.unwrap_or_else(|| json!({}));
        Ok(match method {
            "ping" => Step::Reply(self.result(json!({}))),
            "server/discover" if self.era == Era::Modern => Step::Reply(self.discover()),
            "tools/list" => Step::Reply(self.cacheable(json!({ "tools": tools() }))),
            "tools/call" => {
                let name = params.get("name").and_then(Value::as_str).ok_or_else(|| {
                    RpcError::new(code::INVALID_PARAMS, "tools/call needs a name")
                })?;
                let args = match params.get("arguments") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(a)) => a.clone(),
                    Some(_) => {
                        return Err(RpcError::new(
                            code::INVALID_PARAMS,
                            "arguments must be an object",
                        ))
                    }
                };
                if !TOOL_NAMES.contains(&name) {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        format!(
                            "unknown tool {:?} (tools: {})",
                            crate::config::single_line(name),
                            TOOL_NAMES.join(", ")
                        ),
                    ));
                }
                Step::Call(ToolCall::parse(name, &args, &self.limits))
            }
            _ => {
                let mut e = RpcError::new(code::METHOD_NOT_FOUND, "method not found");
                e.data = Some(Value::String(crate::config::single_line(method)));
                return Err(e);
            }
        })
    }

    fn discover(&self) -> Value {
        let mut r = json!({
            "supportedVersions": MODERN_VERSIONS,
            "capabilities": self.capabilities(),
            "instructions": self.info.instructions,
        });
        r["ttlMs"] = 0.into();
        r["cacheScope"] = "public".into();
        r["resultType"] = "complete".into();
        r["_meta"] =
            json!({ SERVER_INFO_KEY: { "name": self.info.name, "version": self.info.version } });
        r
    }

    fn initialize(&mut self, params: Option<&Value>) -> Result<Value, RpcError> {
        if let Era::Handshake { .. } = self.era {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "initialize was already done on this connection",
            ));
        }
        let asked = params
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RpcError::new(code::INVALID_PARAMS, "initialize needs protocolVersion")
            })?;
        // The client's revision when served, else the newest handshake one (the client then
        // decides whether it can speak it).
        let version = HANDSHAKE_VERSIONS
            .iter()
            .find(|v| **v == asked)
            .unwrap_or(&HANDSHAKE_VERSIONS[0])
            .to_string();
        self.era = Era::Handshake {
            version: version.clone(),
        };
        Ok(json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": { "name": self.info.name, "version": self.info.version },
            "instructions": self.info.instructions,
        }))
    }
}

/// The 2026-07-28 request envelope: `_meta` with the protocol version (one served) and the
/// client's capabilities.
fn envelope(params: Option<&Value>) -> Result<(), RpcError> {
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RpcError::new(
                code::INVALID_PARAMS,
                "params._meta must carry the protocol version and client capabilities",
            )
        })?;
    let missing: Vec<&str> = [VERSION_KEY, CAPS_KEY]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(RpcError::new(
            code::INVALID_PARAMS,
            format!("params._meta is missing {}", missing.join(", ")),
        ));
    }
    let Some(v) = meta[VERSION_KEY].as_str() else {
        return Err(RpcError::new(
            code::INVALID_PARAMS,
            "the protocol version must be a string",
        ));
    };
    if !MODERN_VERSIONS.contains(&v) {
        let mut e = RpcError::new(
            code::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
        );
        e.data = Some(json!({ "supported": MODERN_VERSIONS, "requested": v }));
        return Err(e);
    }
    Ok(())
}

pub const TOOL_NAMES: &[&str] = &["run_command", "read_file", "write_file", "list_directory"];

/// The tools, as `tools/list` describes them.
pub fn tools() -> Value {
    json!([
        {
            "name": "run_command",
            "title": "Run a command in the sandbox",
            "description": "Run a command inside this session's sandbox and return its exit code and output. `command` is a shell command line (/bin/sh -c); `argv` runs a program directly. The whole process tree is killed at the time limit (exit code 124, timed_out true). Output beyond the server's limit is cut (stdout_truncated/stderr_truncated). Files written persist for the session.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "command": { "type": "string", "description": "A shell command line, run with /bin/sh -c." },
                    "argv": { "type": "array", "items": { "type": "string" }, "minItems": 1, "description": "A program and its arguments (instead of command)." },
                    "timeout_s": { "type": "number", "exclusiveMinimum": 0, "description": "Time limit in seconds (the server bounds it)." },
                    "cwd": { "type": "string", "description": "Working directory (absolute)." },
                    "env": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Environment variables to add." },
                    "stdin": { "type": "string", "description": "Text given to the command's standard input." }
                },
                "additionalProperties": false
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "exit_code": { "anyOf": [{ "type": "integer" }, { "type": "null" }] },
                    "signal": { "anyOf": [{ "type": "integer" }, { "type": "null" }] },
                    "timed_out": { "type": "boolean" },
                    "oom_killed": { "type": "boolean" },
                    "duration_ms": { "type": "number" },
                    "cpu_usec": { "anyOf": [{ "type": "integer" }, { "type": "null" }] },
                    "peak_memory_bytes": { "anyOf": [{ "type": "integer" }, { "type": "null" }] },
                    "error": { "anyOf": [{ "type": "string" }, { "type": "null" }] },
                    "stdout": { "type": "string" },
                    "stderr": { "type": "string" },
                    "stdout_bytes": { "type": "integer" },
                    "stderr_bytes": { "type": "integer" },
                    "stdout_truncated": { "type": "boolean" },
                    "stderr_truncated": { "type": "boolean" }
                },
                "required": ["exit_code", "timed_out", "stdout", "stderr"]
            },
            "annotations": { "readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false }
        },
        {
            "name": "read_file",
            "title": "Read a file in the sandbox",
            "description": "Read a file from this session's sandbox. Text comes back as text; other bytes as base64 (encoding \"base64\"). At most max_bytes are returned (the server bounds it); truncated says when the file is longer.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "path": { "type": "string", "description": "Absolute path in the sandbox." },
                    "max_bytes": { "type": "integer", "minimum": 1 }
                },
                "required": ["path"],
                "additionalProperties": false
            },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        },
        {
            "name": "write_file",
            "title": "Write a file in the sandbox",
            "description": "Create or replace a file in this session's sandbox (its directory must exist), owned by the sandbox's user. content is text, or base64 with encoding \"base64\".",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "path": { "type": "string", "description": "Absolute path in the sandbox." },
                    "content": { "type": "string" },
                    "encoding": { "type": "string", "enum": ["utf-8", "base64"] },
                    "mode": { "type": "string", "pattern": "^0?[0-7]{3}$", "description": "Permissions in octal, e.g. 0644 (default) or 0755." }
                },
                "required": ["path", "content"],
                "additionalProperties": false
            },
            "annotations": { "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false }
        },
        {
            "name": "list_directory",
            "title": "List a directory in the sandbox",
            "description": "List a directory of this session's sandbox: each entry's name, type (file, dir, symlink, other), size, mode, modification time and, for links, target. Links are not followed.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "path": { "type": "string", "description": "Absolute path in the sandbox." }
                },
                "required": ["path"],
                "additionalProperties": false
            },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        }
    ])
}

/// A tool call with checked arguments, or the message telling the model what was wrong
/// (returned as a tool error, so the model can correct itself).
#[derive(Debug, Clone, PartialEq)]
pub enum ToolCall {
    Run(RunCommand),
    Read {
        path: String,
        max_bytes: u64,
    },
    Write {
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
    List {
        path: String,
    },
    Invalid(String),
}

/// `run_command`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCommand {
    pub argv: Vec<String>,
    pub timeout_ms: u64,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub max_output: u64,
}

fn path_arg(args: &Map<String, Value>, key: &str) -> Result<String, String> {
    let p = args
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key}: a string is required"))?;
    sandbox_path(key, p)
}

/// A path in the sandbox as the tools take it: absolute, no `..`, no NUL, at most 4096 bytes.
pub fn sandbox_path(key: &str, p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!(
            "{key}: an absolute path (starting with /) is required"
        ));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{key}: `..` is not allowed"));
    }
    if p.contains('\0') || p.len() > 4096 {
        return Err(format!("{key}: no NUL bytes, at most 4096 bytes"));
    }
    Ok(p.to_string())
}

fn known_keys(args: &Map<String, Value>, keys: &[&str]) -> Result<(), String> {
    match args.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown argument {:?} (arguments: {})",
            crate::config::single_line(k),
            keys.join(", ")
        )),
        None => Ok(()),
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let body = clean
        .strip_suffix(b"==")
        .or_else(|| clean.strip_suffix(b"="))
        .unwrap_or(&clean);
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let mut n = [0u8; 3];
        n[..chunk.len()].copy_from_slice(chunk);
        let v = u32::from_be_bytes([0, n[0], n[1], n[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

impl ToolCall {
    /// Check a call's arguments against the tool's schema and the operator's limits.
    pub fn parse(name: &str, args: &Map<String, Value>, limits: &Limits) -> ToolCall {
        let r = match name {
            "run_command" => Self::run(args, limits),
            "read_file" => known_keys(args, &["path", "max_bytes"]).and_then(|_| {
                let max_bytes = match args.get("max_bytes") {
                    None => limits.max_output,
                    Some(v) => match v.as_u64() {
                        Some(n) if n > 0 => n.min(limits.max_output),
                        _ => return Err("max_bytes: a positive integer is required".into()),
                    },
                };
                Ok(ToolCall::Read {
                    path: path_arg(args, "path")?,
                    max_bytes,
                })
            }),
            "write_file" => {
                known_keys(args, &["path", "content", "encoding", "mode"]).and_then(|_| {
                    let path = path_arg(args, "path")?;
                    if path.ends_with('/') || path.ends_with("/.") {
                        return Err("path: a file's path is required, not a directory's".into());
                    }
                    let text = args
                        .get("content")
                        .and_then(Value::as_str)
                        .ok_or("content: a string is required")?;
                    let content = match args.get("encoding").map(|e| e.as_str()) {
                        None | Some(Some("utf-8")) => text.as_bytes().to_vec(),
                        Some(Some("base64")) => {
                            base64_decode(text).ok_or("content: not valid base64")?
                        }
                        _ => return Err("encoding: \"utf-8\" or \"base64\"".into()),
                    };
                    if content.len() as u64 > limits.max_input {
                        return Err(format!(
                            "content: {} bytes; this server takes at most {}",
                            content.len(),
                            limits.max_input
                        ));
                    }
                    let mode = match args.get("mode") {
                        None => 0o644,
                        Some(m) => m
                            .as_str()
                            .filter(|s| (3..=4).contains(&s.len()))
                            .and_then(|s| u32::from_str_radix(s, 8).ok())
                            .filter(|m| *m <= 0o777)
                            .ok_or("mode: octal permissions such as \"0644\" or \"755\"")?,
                    };
                    Ok(ToolCall::Write {
                        path,
                        content,
                        mode,
                    })
                })
            }
            "list_directory" => known_keys(args, &["path"]).and_then(|_| {
                Ok(ToolCall::List {
                    path: path_arg(args, "path")?,
                })
            }),
            _ => Err(format!("unknown tool {name}")),
        };
        r.unwrap_or_else(ToolCall::Invalid)
    }

    fn run(args: &Map<String, Value>, limits: &Limits) -> Result<ToolCall, String> {
        known_keys(
            args,
            &["command", "argv", "timeout_s", "cwd", "env", "stdin"],
        )?;
        let argv = match (args.get("command"), args.get("argv")) {
            (Some(Value::String(c)), None) => {
                if c.trim().is_empty() {
                    return Err("command: an empty command line".into());
                }
                vec!["/bin/sh".into(), "-c".into(), c.clone()]
            }
            (None, Some(Value::Array(a))) if !a.is_empty() => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or("argv: strings only")?,
            (Some(_), Some(_)) => return Err("give command or argv, not both".into()),
            (None, None) => return Err("command (a shell command line) or argv is required".into()),
            (Some(_), None) => return Err("command: a string is required".into()),
            (None, Some(_)) => return Err("argv: a non-empty array of strings".into()),
        };
        if argv.iter().any(|a| a.contains('\0')) {
            return Err("command: no NUL bytes".into());
        }
        let timeout_ms = match args.get("timeout_s") {
            None => limits.default_timeout_ms,
            Some(v) => match v.as_f64() {
                Some(s) if s > 0.0 && s.is_finite() => {
                    ((s * 1000.0).ceil() as u64).clamp(1, limits.max_timeout_ms)
                }
                _ => return Err("timeout_s: a positive number of seconds".into()),
            },
        };
        let cwd = match args.get("cwd") {
            None => None,
            Some(Value::String(c)) => Some(sandbox_path("cwd", c)?),
            Some(_) => return Err("cwd: a string is required".into()),
        };
        let env = match args.get("env") {
            None => vec![],
            Some(Value::Object(m)) => {
                let mut env = Vec::new();
                for (k, v) in m {
                    let ok_key = !k.is_empty()
                        && !k.contains('=')
                        && !k.contains('\0')
                        && !k.as_bytes()[0].is_ascii_digit();
                    let Some(v) = v.as_str().filter(|v| !v.contains('\0')) else {
                        return Err(format!(
                            "env.{}: a string without NUL bytes",
                            crate::config::single_line(k)
                        ));
                    };
                    if !ok_key {
                        return Err(format!(
                            "env: {:?} is not a variable name",
                            crate::config::single_line(k)
                        ));
                    }
                    env.push(format!("{k}={v}"));
                }
                env
            }
            Some(_) => return Err("env: an object of strings".into()),
        };
        let stdin = match args.get("stdin") {
            None => None,
            Some(Value::String(s)) if s.len() as u64 <= limits.max_input => {
                Some(s.as_bytes().to_vec())
            }
            Some(Value::String(s)) => {
                return Err(format!(
                    "stdin: {} bytes; this server takes at most {}",
                    s.len(),
                    limits.max_input
                ))
            }
            Some(_) => return Err("stdin: a string is required".into()),
        };
        Ok(ToolCall::Run(RunCommand {
            argv,
            timeout_ms,
            cwd,
            env,
            stdin,
            max_output: limits.max_output,
        }))
    }
}

/// A tool's result: text for the model, and structured content when there is some.
pub fn tool_result(text: String, structured: Option<Value>, is_error: bool) -> Value {
    let mut r = json!({
        "content": [ { "type": "text", "text": text } ],
        "isError": is_error,
    });
    if let Some(s) = structured {
        r["structuredContent"] = s;
    }
    r
}

/// `run_command`'s result from `nucleus exec --json --capture`'s object.
pub fn run_result(exec: &Value) -> Value {
    let mut text = String::new();
    let code = exec.get("exit_code").and_then(Value::as_i64);
    if exec.get("timed_out").and_then(Value::as_bool) == Some(true) {
        text.push_str("timed out (the command and everything it started were killed)\n");
    }
    if exec.get("oom_killed").and_then(Value::as_bool) == Some(true) {
        text.push_str("killed: out of memory\n");
    }
    match (code, exec.get("signal").and_then(Value::as_i64)) {
        (_, Some(s)) => text.push_str(&format!("killed by signal {s}\n")),
        (Some(c), None) => text.push_str(&format!("exit code {c}\n")),
        (None, None) => {}
    }
    for name in ["stdout", "stderr"] {
        let s = exec.get(name).and_then(Value::as_str).unwrap_or("");
        if !s.is_empty() {
            text.push_str(&format!("--- {name} ---\n{s}"));
            if !s.ends_with('\n') {
                text.push('\n');
            }
        }
        if exec
            .get(format!("{name}_truncated"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            let all = exec
                .get(format!("{name}_bytes"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            text.push_str(&format!("[{name} cut: {all} bytes in all]\n"));
        }
    }
    let failed = exec.get("error").is_some_and(|e| !e.is_null());
    if let Some(e) = exec.get("error").and_then(Value::as_str) {
        text.push_str(&format!("error: {e}\n"));
    }
    tool_result(text, Some(exec.clone()), failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn::new(
            ServerInfo {
                name: "nucleus".into(),
                version: "0".into(),
                instructions: "i".into(),
            },
            Limits {
                default_timeout_ms: 60_000,
                max_timeout_ms: 600_000,
                max_output: 1 << 20,
                max_input: 1 << 24,
            },
        )
    }

    /// A connection after the 2025-11-25 handshake.
    fn initialized() -> Conn {
        let mut c = conn();
        req(
            &mut c,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
        );
        c
    }

    fn req(c: &mut Conn, line: &str) -> Step {
        c.handle(parse(line).unwrap())
    }

    #[test]
    fn parse_rejects_what_is_not_a_request() {
        assert_eq!(parse("{").unwrap_err().1.code, code::PARSE_ERROR);
        assert_eq!(parse("[]").unwrap_err().1.code, code::INVALID_REQUEST);
        let (id, e) = parse(r#"{"jsonrpc":"1.0","id":3,"method":"x"}"#).unwrap_err();
        assert_eq!((id, e.code), (json!(3), code::INVALID_REQUEST));
        let (id, _) = parse(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).unwrap_err();
        assert_eq!(id, Value::Null);
        assert!(parse(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).is_err());
        assert!(parse(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#).is_err());
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap(),
            Incoming::Response
        );
    }

    #[test]
    fn handshake_negotiates_a_served_version() {
        let mut c = conn();
        let init = |v: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{v}","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
            )
        };
        let Step::Reply(r) = req(&mut c, &init("2025-06-18")) else {
            panic!()
        };
        assert_eq!(r["protocolVersion"], "2025-06-18");
        assert_eq!(r["capabilities"]["tools"]["listChanged"], false);
        // Again on the same connection: refused.
        assert!(matches!(req(&mut c, &init("2025-06-18")), Step::Fail(_)));
        let mut c = conn();
        let Step::Reply(r) = req(&mut c, &init("2099-01-01")) else {
            panic!()
        };
        assert_eq!(r["protocolVersion"], HANDSHAKE_VERSIONS[0]);
        // Legacy results carry no 2026 fields.
        let Step::Reply(r) = req(&mut c, r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
        else {
            panic!()
        };
        assert!(r.get("resultType").is_none() && r.get("ttlMs").is_none());
        assert_eq!(r["tools"].as_array().unwrap().len(), TOOL_NAMES.len());
    }

    #[test]
    fn requests_before_initialize_are_refused() {
        let mut c = conn();
        let s = req(&mut c, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(matches!(s, Step::Fail(e) if e.code == code::INVALID_REQUEST));
        assert!(matches!(
            req(&mut c, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Step::Reply(_)
        ));
    }

    const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    #[test]
    fn modern_envelope_locks_the_era_and_shapes_results() {
        let mut c = conn();
        let Step::Reply(r) = req(
            &mut c,
            &format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{META}}}}}"#
            ),
        ) else {
            panic!()
        };
        assert_eq!(r["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["cacheScope"], "public");
        assert_eq!(c.version(), Some("2026-07-28"));
        let Step::Reply(r) = req(
            &mut c,
            &format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{{META}}}}}"#),
        ) else {
            panic!()
        };
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["ttlMs"], 0);
        assert_eq!(r["_meta"][SERVER_INFO_KEY]["name"], "nucleus");
        // No handshake on a modern connection; requests without the envelope are refused.
        let s = req(
            &mut c,
            r#"{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
        );
        assert!(matches!(s, Step::Fail(e) if e.code == code::UNSUPPORTED_PROTOCOL_VERSION));
        let s = req(&mut c, r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#);
        assert!(matches!(s, Step::Fail(e) if e.code == code::INVALID_PARAMS));
        let s = req(
            &mut c,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2030-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        let Step::Fail(e) = s else { panic!() };
        assert_eq!(e.code, code::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.data.unwrap()["requested"], "2030-01-01");
    }

    #[test]
    fn handshake_connection_refuses_the_envelope() {
        let mut c = initialized();
        let s = req(
            &mut c,
            &format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{{META}}}}}"#),
        );
        assert!(matches!(s, Step::Fail(e) if e.code == code::INVALID_REQUEST));
    }

    fn call(args: Value) -> ToolCall {
        let mut c = initialized();
        let line = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":args}).to_string();
        match req(&mut c, &line) {
            Step::Call(t) => t,
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn tool_arguments_are_checked_and_bounded() {
        let ToolCall::Run(r) = call(
            json!({"name":"run_command","arguments":{"command":"echo hi","timeout_s":99999,"env":{"A":"b"}}}),
        ) else {
            panic!()
        };
        assert_eq!(r.argv, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(r.timeout_ms, 600_000, "bounded by the operator's maximum");
        assert_eq!(r.env, ["A=b"]);
        let ToolCall::Run(r) =
            call(json!({"name":"run_command","arguments":{"argv":["ls","-la"]}}))
        else {
            panic!()
        };
        assert_eq!((r.argv.len(), r.timeout_ms), (2, 60_000));
        for (args, says) in [
            (json!({"command":"x","argv":["y"]}), "not both"),
            (json!({}), "required"),
            (json!({"command":"x","privileged":true}), "unknown argument"),
            (json!({"command":"x","timeout_s":-1}), "timeout_s"),
            (json!({"command":"x","cwd":"../etc"}), "absolute"),
            (json!({"command":"x","env":{"A=B":"c"}}), "variable name"),
            (json!({"argv":[1]}), "strings only"),
        ] {
            match call(json!({"name":"run_command","arguments":args})) {
                ToolCall::Invalid(m) => assert!(m.contains(says), "{m} lacks {says}"),
                t => panic!("{args} gave {t:?}"),
            }
        }
        for (name, args, says) in [
            ("read_file", json!({"path":"/a/../../etc/shadow"}), ".."),
            ("read_file", json!({"path":"etc"}), "absolute"),
            (
                "write_file",
                json!({"path":"/x","content":"a","mode":"4755"}),
                "mode",
            ),
            (
                "write_file",
                json!({"path":"/x","content":"%%","encoding":"base64"}),
                "base64",
            ),
            (
                "write_file",
                json!({"path":"/","content":"a"}),
                "file's path",
            ),
            ("list_directory", json!({}), "path"),
        ] {
            match call(json!({"name":name,"arguments":args})) {
                ToolCall::Invalid(m) => assert!(m.contains(says), "{m} lacks {says}"),
                t => panic!("{args} gave {t:?}"),
            }
        }
        let ToolCall::Write { content, mode, .. } = call(
            json!({"name":"write_file","arguments":{"path":"/w/x","content":"aGk=","encoding":"base64","mode":"755"}}),
        ) else {
            panic!()
        };
        assert_eq!((content.as_slice(), mode), (&b"hi"[..], 0o755));
        let ToolCall::Read { max_bytes, .. } = call(
            json!({"name":"read_file","arguments":{"path":"/etc/hosts","max_bytes":1u64<<40}}),
        ) else {
            panic!()
        };
        assert_eq!(max_bytes, 1 << 20);
    }

    #[test]
    fn unknown_tools_are_protocol_errors() {
        let mut c = initialized();
        let s = req(
            &mut c,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"mount_host"}}"#,
        );
        assert!(matches!(s, Step::Fail(e) if e.code == code::INVALID_PARAMS));
        let s = req(
            &mut c,
            r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#,
        );
        assert!(matches!(s, Step::Fail(e) if e.code == code::METHOD_NOT_FOUND));
        let s = c.handle(
            parse(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
            )
            .unwrap(),
        );
        assert_eq!(s, Step::Cancel(json!(7)));
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..70u8 {
            let b: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&b)).unwrap(), b);
        }
        assert_eq!(base64_encode(b"hi"), "aGk=");
        assert!(base64_decode("a").is_none());
    }

    #[test]
    fn run_result_says_what_happened() {
        let r = run_result(
            &json!({"exit_code":124,"signal":null,"timed_out":true,"oom_killed":false,"stdout":"x","stderr":"","stdout_truncated":true,"stdout_bytes":9,"error":null}),
        );
        let t = r["content"][0]["text"].as_str().unwrap();
        assert!(t.contains("timed out") && t.contains("exit code 124") && t.contains("9 bytes"));
        assert_eq!(r["isError"], false);
        assert_eq!(r["structuredContent"]["exit_code"], 124);
    }
}
