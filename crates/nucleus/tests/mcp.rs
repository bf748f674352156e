//! `nucleus mcp` (#21) at the wire, as a hostile client would drive it: malformed and oversized
//! messages answered with JSON-RPC errors while the session goes on, a link in the sandbox to a
//! host file never read from the host, `ls` of a sandbox directory, and the server killed with
//! SIGKILL in the middle of a call leaving nothing behind. (The official client's view is in
//! tests/mcp/test_mcp_server.py.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let mut args = vec!["mcp"];
        args.extend_from_slice(flags);
        let mut child = nucleus(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut s = Server {
            child,
            input,
            output,
        };
        let r = s.call(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}));
        assert_eq!(r["result"]["protocolVersion"], "2025-11-25", "{r}");
        s.send_raw(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        s
    }

    fn send_raw(&mut self, line: &[u8]) {
        self.input.write_all(line).unwrap();
        self.input.write_all(b"\n").unwrap();
        self.input.flush().unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut l = String::new();
        self.output.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
    }

    fn call(&mut self, msg: Value) -> Value {
        self.send_raw(msg.to_string().as_bytes());
        self.recv()
    }

    fn tool(&mut self, id: u64, name: &str, args: Value) -> Value {
        let r = self.call(json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}}));
        assert_eq!(r["id"], id, "{r}");
        r["result"].clone()
    }
}

fn host_procs(marker: &str) -> usize {
    host_procs_with(|a| a == marker.as_bytes())
}

/// Host processes with an argument `is`.
fn host_procs_with(is: impl Fn(&[u8]) -> bool) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| c.split(|&b| b == 0).any(&is))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn malformed_and_oversized_messages_get_errors_and_the_session_goes_on() {
    let _g = serial();
    leaves_nothing(|| {
        let mut s = Server::start(&["--input-max", "1K"]);
        for (line, code) in [
            (&b"{not json"[..], -32700),
            (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600),
            (b"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", -32600),
            (b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"../../bin/sh\"}}", -32602),
            (b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/list\"}", -32601),
        ] {
            s.send_raw(line);
            let r = s.recv();
            assert_eq!(r["error"]["code"], code, "{}: {r}", String::from_utf8_lossy(line));
        }
        // A line past the bound (2 × --input-max + 1 MiB) is dropped unread, and answered.
        let mut big = br#"{"jsonrpc":"2.0","id":4,"method":"ping","params":{"x":""#.to_vec();
        big.extend(std::iter::repeat_n(b'a', 3 << 20));
        big.extend(br#""}}"#);
        s.send_raw(&big);
        let r = s.recv();
        assert_eq!(r["error"]["code"], -32600, "{r}");
        // Over --input-max: the model is told, nothing is written.
        let r = s.tool(
            5,
            "write_file",
            json!({"path":"/tmp/x","content":"a".repeat(2000)}),
        );
        assert_eq!(r["isError"], true, "{r}");
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("at most 1024"),
            "{r}"
        );
        let r = s.call(json!({"jsonrpc":"2.0","id":6,"method":"ping"}));
        assert_eq!(r["result"], json!({}), "{r}");
        drop(s.input);
        let st = wait_within(&mut s.child, DEADLINE, "nucleus mcp");
        assert!(st.success(), "{st:?}");
    });
}

#[test]
fn a_link_to_a_host_path_is_read_inside_the_sandbox() {
    let _g = serial();
    let secret = TempDir::new("mcp-secret");
    let host_file = secret.path().join("host-only");
    std::fs::write(&host_file, "HOST SECRET").unwrap();
    leaves_nothing(|| {
        let mut s = Server::start(&[]);
        let link = format!("ln -s {} /tmp/l && ln -s / /tmp/root", host_file.display());
        let r = s.tool(1, "run_command", json!({"command": link}));
        assert_eq!(r["structuredContent"]["exit_code"], 0, "{r}");
        let r = s.tool(2, "read_file", json!({"path":"/tmp/l"}));
        assert_eq!(r["isError"], true, "{r}");
        assert!(!r.to_string().contains("HOST SECRET"), "{r}");
        let r = s.tool(3, "list_directory", json!({"path":"/tmp"}));
        let entries = r["structuredContent"]["entries"]
            .as_array()
            .unwrap()
            .clone();
        let l = entries.iter().find(|e| e["name"] == "l").unwrap();
        assert_eq!(
            (l["type"].as_str(), l["target"].as_str()),
            (Some("symlink"), host_file.to_str())
        );
        // The sandbox's own root through a link is the sandbox's, not the host's.
        let r = s.tool(4, "list_directory", json!({"path":"/tmp/root/tmp"}));
        let names: Vec<&str> = r["structuredContent"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["l", "root"], "{r}");
        drop(s.input);
        wait_within(&mut s.child, DEADLINE, "nucleus mcp");
    });
}

#[test]
fn ls_lists_a_sandbox_directory() {
    let _g = serial();
    leaves_nothing(|| {
        let sb = Session::new(&[]);
        sb.sh("mkdir /tmp/d && echo hi > /tmp/d/f && ln -s f /tmp/d/l && chmod 640 /tmp/d/f");
        let o = run(&["ls", &sb.at("/tmp/d")]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("-rw-r-----") && out.contains(" f\n") && out.contains("l -> f"),
            "{out}"
        );
        let o = run(&["ls", "--json", &sb.at("/tmp/d")]);
        let v: Vec<Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v[0]["size"], 3);
        assert_eq!(v[1]["type"], "symlink");
        let o = run(&["ls", &sb.at("/tmp/../etc")]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("without `..`"), "{}", stderr(&o));
        // Relative is relative to the sandbox's /, as with cp.
        assert!(stdout(&run(&["ls", &sb.at("tmp")])).contains(" d\n"));
    });
}

#[test]
fn the_server_killed_mid_call_leaves_nothing() {
    let _g = serial();
    leaves_nothing(|| {
        let mut s = Server::start(&[]);
        let r = s.tool(1, "run_command", json!({"command":"true"}));
        assert_eq!(r["structuredContent"]["exit_code"], 0, "{r}");
        s.send_raw(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_command","arguments":{"command":"sleep 35353 & sleep 35353"}}}).to_string().as_bytes());
        let t = Instant::now();
        while host_procs("35353") < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the call never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s.child.kill().unwrap();
        s.child.wait().unwrap();
        let t = Instant::now();
        while host_procs("35353") > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the call outlived its server"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The session's `nucleus run` got SIGTERM when its server died: it stops the sandbox
        // and removes everything (how soon depends on the host's init reaping what the killed
        // calls left: up to a second or so here).
        let t = Instant::now();
        while host_procs_with(|a| a.starts_with(b"mcp-")) > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the session's sandbox outlived its server"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = run(&["ps", "-a", "--format", "json"]);
        assert!(!stdout(&o).contains("mcp-"), "{}", stdout(&o));
    });
}

#[test]
fn the_file_tools_act_as_the_operators_user_not_as_root() {
    let _g = serial();
    let t = TempDir::new("mcp-user");
    let secret = t.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key"), "ROOT ONLY").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(secret.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir(secret.join("private")).unwrap();
    std::fs::set_permissions(
        secret.join("private"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let vol = format!("{}:/secret", secret.display());
    leaves_nothing(|| {
        let mut s = Server::start(&["-u", "1000", "-v", &vol]);
        let r = s.tool(
            1,
            "run_command",
            json!({"command": "id -u; cat /secret/key"}),
        );
        assert_eq!(r["structuredContent"]["stdout"], "1000\n", "{r}");
        let r = s.tool(2, "read_file", json!({"path": "/secret/key"}));
        assert_eq!(r["isError"], true, "{r}");
        assert!(!r.to_string().contains("ROOT ONLY"), "{r}");
        let r = s.tool(3, "list_directory", json!({"path": "/secret/private"}));
        assert_eq!(
            r["isError"], true,
            "a 0700 root directory is not listed: {r}"
        );
        let r = s.tool(
            4,
            "write_file",
            json!({"path": "/secret/private/x", "content": "x"}),
        );
        assert_eq!(r["isError"], true, "{r}");
        drop(s.input);
        wait_within(&mut s.child, DEADLINE, "nucleus mcp");
    });
    assert!(!secret.join("private/x").exists());
}

#[test]
fn a_sandbox_that_cannot_be_made_is_a_tool_error_and_leaves_nothing() {
    let _g = serial();
    leaves_nothing(|| {
        // Checked only when the sandbox is made (a dry run does not look at the host).
        let mut s = Server::start(&["--workspace", "/nonexistent/nucleus-mcp-ws"]);
        let r = s.tool(1, "run_command", json!({"command": "true"}));
        assert_eq!(r["isError"], true, "{r}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("could not be made") && text.contains("--workspace"),
            "{text}"
        );
        // The session goes on: the next call tries again.
        let r = s.tool(2, "list_directory", json!({"path": "/"}));
        assert_eq!(r["isError"], true, "{r}");
        drop(s.input);
        let st = wait_within(&mut s.child, DEADLINE, "nucleus mcp");
        assert!(st.success(), "{st:?}");
    });
}

/// The server's call bookkeeping: calls beyond --calls-max wait, beyond the queue's bound
/// (4 per slot) are refused; a cancelled call keeps its slot until it ends, gets no answer,
/// and its id may be used again, the new call getting its own answer.
#[test]
fn calls_queue_within_bounds_and_a_cancelled_id_can_be_reused() {
    let _g = serial();
    leaves_nothing(|| {
        let mut s = Server::start(&["--calls-max", "1"]);
        let r = s.tool(1, "run_command", json!({"command": "true"}));
        assert_eq!(r["structuredContent"]["exit_code"], 0, "{r}");
        let call = |id: u64, cmd: &str| {
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"run_command","arguments":{"command":cmd}}}).to_string()
        };
        // One runs, four wait, the sixth is refused at once.
        s.send_raw(call(10, "sleep 36363").as_bytes());
        for id in 11..=14 {
            s.send_raw(call(id, &format!("echo {id}")).as_bytes());
        }
        s.send_raw(call(15, "echo 15").as_bytes());
        let r = s.recv();
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (json!(15), json!(-32600)),
            "{r}"
        );
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("too many calls waiting"),
            "{r}"
        );
        let wait_for = |marker: &str| {
            let t = Instant::now();
            while host_procs(marker) == 0 {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "the call never started"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // Cancelled, the running call gets no answer and the waiting ones run.
        wait_for("36363");
        s.send_raw(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10}}"#,
        );
        let mut answers = std::collections::BTreeMap::new();
        for _ in 11..=14 {
            let r = s.recv();
            let out = r["result"]["structuredContent"]["stdout"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(
                answers.insert(r["id"].as_u64().unwrap(), out).is_none(),
                "two answers: {r}"
            );
        }
        for id in 11..=14 {
            assert_eq!(answers[&id], format!("{id}\n"), "{answers:?}");
        }
        assert_eq!(host_procs("36363"), 0, "the cancelled call's tree is gone");
        // An id reused at once after its call was cancelled (the old call still ending): the
        // one answer under it is the new call's.
        s.send_raw(call(30, "sleep 36364").as_bytes());
        wait_for("36364");
        s.send_raw(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":30}}"#,
        );
        s.send_raw(call(30, "echo again").as_bytes());
        let r = s.recv();
        assert_eq!(r["id"], 30, "{r}");
        assert_eq!(r["result"]["structuredContent"]["stdout"], "again\n", "{r}");
        let r = s.call(json!({"jsonrpc":"2.0","id":20,"method":"ping"}));
        assert_eq!(r["id"], 20, "no stray answer is left: {r}");
        drop(s.input);
        wait_within(&mut s.child, DEADLINE, "nucleus mcp");
    });
}
