//! Workload compatibility: real tools must work inside the default sandbox (seccomp allowlist,
//! Landlock rules, read-only root). Each tool is required: a missing one fails with its name.

mod common;
use common::*;

fn tool(name: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| std::path::Path::new(d).join(name).exists());
    assert!(
        found,
        "{name} is not installed; scripts/test.sh installs it (apt)"
    );
}

fn ok(args: &[&str], expect: &str) {
    let mut full = vec!["run", "--"];
    full.extend_from_slice(args);
    let o = run(&full);
    assert!(
        o.status.success(),
        "{args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains(expect),
        "{args:?}: expected {expect:?} in {:?}",
        stdout(&o)
    );
}

#[test]
fn shells_and_coreutils() {
    let _g = serial();
    tool("dash");
    tool("bash");
    ok(&["dash", "-c", "echo dash-ok"], "dash-ok");
    ok(
        &[
            "bash",
            "-c",
            "set -euo pipefail; arr=(a b); echo ${#arr[@]} bash-ok",
        ],
        "2 bash-ok",
    );
    ok(&["sh", "-c", "cd /tmp && touch f && chmod 600 f && ln -s f l && mkdir -p d/e && mv f d/ && cp d/f g && rm -r d && ls"], "g");
    ok(&["sh", "-c", "date >/dev/null && sort </etc/passwd | head -1 && awk 'BEGIN{print \"awk-ok\"}' && sed -n 1p /etc/hostname >/dev/null"], "awk-ok");
}

#[test]
fn busybox() {
    let _g = serial();
    tool("busybox");
    ok(
        &[
            "busybox",
            "sh",
            "-c",
            "busybox ls / >/dev/null && busybox ps >/dev/null && echo bb-ok",
        ],
        "bb-ok",
    );
}

#[test]
fn python_with_multiprocessing_and_threads() {
    let _g = serial();
    tool("python3");
    let script = r#"
import multiprocessing, threading, subprocess, tempfile, os, socket
def sq(x): return x * x
with multiprocessing.Pool(2) as p: total = sum(p.map(sq, range(10)))
out = []
t = threading.Thread(target=lambda: out.append("t")); t.start(); t.join()
r = subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip()
with tempfile.NamedTemporaryFile() as f: f.write(b"x"); f.flush()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); s.close()
print("py-ok", total, out[0], r)
"#;
    ok(&["/usr/bin/python3", "-c", script], "py-ok 285 t sub");
}

#[test]
fn gcc_compiles_and_runs() {
    let _g = serial();
    tool("gcc");
    ok(
        &["sh", "-c", "cd /tmp && printf '#include <stdio.h>\\n#include <pthread.h>\\nvoid*f(void*a){return a;}\\nint main(){pthread_t t;pthread_create(&t,0,f,0);pthread_join(t,0);puts(\"c-ok\");}' > a.c && gcc -O1 -pthread a.c -o a && ./a"],
        "c-ok",
    );
}

#[test]
fn git_perl_node() {
    let _g = serial();
    tool("git");
    tool("perl");
    tool("node");
    ok(
        &["sh", "-c", "cd /tmp && git init -q r && cd r && echo x > f && git add f && git -c user.email=a@b -c user.name=n commit -qm first && git log --oneline | wc -l"],
        "1",
    );
    ok(
        &[
            "perl",
            "-e",
            "use strict; my %h=(a=>1); print \"perl-ok $h{a}\\n\"",
        ],
        "perl-ok 1",
    );
    ok(&["node", "-e", "require('child_process').execSync('true'); require('fs').writeFileSync('/tmp/n','x'); console.log('node-ok')"], "node-ok");
}
