//! Networking end-to-end: bridge (IPv4 and IPv6), published ports, slirp, and egress policy by
//! address, port and name. Every test builds its own world: a fresh network namespace as the
//! "host" (lo up), test servers on veth addresses inside it, a DNS server (dnsmasq) answering
//! test names from a hosts file, and nucleus running inside that world. No traffic leaves it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::{Command, Output, Stdio};

/// Runs `body` (bash) inside a new network and mount namespace set up as the test world.
/// In `body`: $N is nucleus, $W a scratch directory, `inner FILE` the text of a script to pass
/// to `bash -c` in a sandbox, and `leftovers` prints what networking state exists.
struct World {
    dir: TempDir,
}

const PRELUDE: &str = r#"
set -u
ip link set lo up
ip link add ext0 type veth peer name ext1 && ip link set ext1 up
for a in 198.51.100.1 198.51.100.2 198.51.100.53; do ip addr add $a/24 dev ext0; done
# Where cloud metadata services answer (a DNS answer must never open them).
for a in 169.254.169.254 100.100.100.200; do ip addr add $a/32 dev ext0; done
for a in 2001:db8::1 2001:db8::2 2001:db8::53; do ip -6 addr add $a/64 dev ext0 nodad; done
ip link set ext0 up
printf '198.51.100.1 allowed.test\n2001:db8::1 allowed.test\n198.51.100.1 a.wild.test\n198.51.100.2 other.test\n198.51.100.1 moving.test\n169.254.169.254 meta.wild.test\n100.100.100.200 ali.wild.test\n' > $W/hosts
python3 $PY $W/ready 198.51.100.1 198.51.100.2 2001:db8::1 2001:db8::2 169.254.169.254 100.100.100.200 & SRV=$!
# A network beyond the world, reached through it (so traffic is forwarded and masqueraded).
# (A process's namespace, not `ip netns add`, which would leave a file in the host's /run.)
unshare -n sleep 1000000 & BEYOND=$!
for i in $(seq 100); do [ "$(readlink /proc/$BEYOND/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.01; done
b() { nsenter -t $BEYOND -n "$@"; }
ip link add out0 type veth peer name out1 netns $BEYOND
ip addr add 203.0.113.1/24 dev out0; ip -6 addr add 2001:db8:1::1/64 dev out0 nodad; ip link set out0 up
b ip link set lo up; b ip link set out1 up
b ip addr add 203.0.113.2/24 dev out1; b ip -6 addr add 2001:db8:1::2/64 dev out1 nodad
b ip route add default via 203.0.113.1; b ip -6 route add default via 2001:db8:1::1
nsenter -t $BEYOND -n python3 $PY $W/ready2 203.0.113.2 2001:db8:1::2 & SRV2=$!
dnsmasq --keep-in-foreground --no-resolv --no-hosts --addn-hosts=$W/hosts \
  --listen-address=198.51.100.53 --bind-interfaces --local-ttl=1 --user=root \
  --log-queries=extra --log-facility=$W/dnsmasq.log \
  --pid-file=$W/dnsmasq.pid 2>$W/dnsmasq.err & DNS=$!
trap 'kill $SRV $SRV2 $DNS $BEYOND 2>/dev/null; wait 2>/dev/null' EXIT
for i in $(seq 100); do [ -f $W/ready ] && [ -f $W/ready2 ] && break; sleep 0.05; done
inner() { cat "$W/$1"; }
leftovers() {
  # A finished sandbox's namespace (and the far end of its veth, taking the near end along) is
  # destroyed by the kernel asynchronously, within milliseconds.
  for i in $(seq 100); do ip -o link | grep -q ': nv[0-9a-f]*-[0-9a-f]*@' || break; sleep 0.02; done
  echo "links: $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')"
  echo "nft: $(nft list tables | grep -v ' nucleus-bridge-nucleus0$' | wc -l)"
  echo "claims: $(ls $NUCLEUS_ROOT/net/nucleus0 2>/dev/null | wc -l)"
}
"#;

/// Inside a sandbox: `c HOST PORT` prints the server's "ok ADDRESS", "refused" (at once: a
/// refused connection is answered with a reset, not left to time out) or the error.
const CONNECT: &str = r#"
c() {
  r=$(timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2 && head -1 <&3" 2>&1)
  case "$r" in *"Connection refused"*) echo refused;; "") echo "no answer";; *) echo "$r" | tail -1;; esac
}
"#;

impl World {
    fn new(name: &str) -> World {
        let dir = TempDir::new(name);
        World { dir }
    }
    /// A sandbox script (the connect helper prepended) saved as `name` in the world's dir.
    fn script(&self, name: &str, body: &str) {
        std::fs::write(self.dir.path().join(name), format!("{CONNECT}{body}")).unwrap();
    }
    fn run(&self, body: &str) -> Output {
        require_root();
        let py = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/net_world.py");
        Command::new("unshare")
            .args(["-n", "-m", "--propagation", "private", "bash", "-c"])
            .arg(format!("{PRELUDE}\n{body}"))
            .env("NUCLEUS_ROOT", state_root())
            .env("N", bin())
            .env("W", self.dir.path())
            .env("PY", py)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn lines(o: &Output) -> String {
    format!("{}\n--- stderr:\n{}", stdout(o), stderr(o))
}

fn assert_clean(out: &str) {
    // Only the world's own links and the (persistent, shared) bridge with its masquerade table
    // remain; no veth of a sandbox, no nftables table of one, no address claim.
    assert!(
        out.contains("links: ext0 ext1 lo nucleus0 out0 \n")
            || out.contains("links: ext0 ext1 lo out0 \n"),
        "{out}"
    );
    assert!(out.contains("nft: 0\n"), "{out}");
    assert!(out.contains("claims: 0\n"), "{out}");
}

#[test]
fn bridge_reaches_the_outside_over_ipv4_and_ipv6_and_leaves_nothing() {
    let _g = serial();
    let w = World::new("net-bridge");
    w.script(
        "in.sh",
        "ip -o addr show eth0 | awk '{print \"addr\", $4}'; ip route | grep default; \
         c 198.51.100.1 8080; c 2001:db8::2 8080; c 203.0.113.2 8080; c 2001:db8:1::2 8080; \
         cat /etc/resolv.conf",
    );
    let o = w.run(
        r#"$N run --network bridge --dns 198.51.100.53 -- bash -c "$(inner in.sh)"; echo "exit=$?"; leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("addr 10.88."), "{out}");
    assert!(out.contains("addr fd8e:7c1a:5b3d::"), "{out}");
    assert!(out.contains("default via 10.88.0.1 dev eth0"), "{out}");
    assert!(out.contains("ok 198.51.100.1 from 10.88."), "{out}");
    assert!(
        out.contains("ok 2001:db8::2 from fd8e:7c1a:5b3d::"),
        "{out}"
    );
    // Beyond the host, connections come from the host's address: NAT, both families.
    assert!(out.contains("ok 203.0.113.2 from 203.0.113.1\n"), "{out}");
    assert!(
        out.contains("ok 2001:db8:1::2 from 2001:db8:1::1\n"),
        "{out}"
    );
    assert!(out.contains("nameserver 198.51.100.53"), "{out}");
    assert_clean(&out);
}

#[test]
fn egress_allow_rules_admit_listed_addresses_and_ports_only() {
    let _g = serial();
    let w = World::new("net-egress");
    w.script(
        "in.sh",
        "echo A=$(c 198.51.100.1 8080); echo B=$(c 198.51.100.2 8080); \
         echo C=$(c 2001:db8::1 8080); echo D=$(c 2001:db8::2 8080); \
         echo E=$(c 198.51.100.53 53)",
    );
    w.script("ports.sh", "echo P=$(c 198.51.100.1 8080)");
    let o = w.run(
        r#"$N run --network bridge --dns 198.51.100.53 --egress-allow 198.51.100.0/31 --egress-allow 2001:db8::1 --events-jsonl $W/ev -- bash -c "$(inner in.sh)"; echo "exit=$?"
           $N run --network bridge --dns 198.51.100.53 --egress-allow 198.51.100.1 --egress-tcp-port 443 -- bash -c "$(inner ports.sh)"
           grep -c egress_refused $W/ev | sed 's/^/events=/'; grep -o '"target":"[^"]*"' $W/ev | sort -u
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("A=ok 198.51.100.1"), "{out}");
    assert!(out.contains("B=refused"), "{out}");
    assert!(out.contains("C=ok 2001:db8::1"), "{out}");
    assert!(out.contains("D=refused"), "{out}");
    // DNS to anything but the runtime's resolver is refused even inside an allowed range.
    assert!(out.contains("E=refused"), "{out}");
    // Port rules restrict the allowed destinations.
    assert!(out.contains("P=refused"), "{out}");
    // Refusals are reported (stderr and events) with their destination.
    assert!(
        out.contains("egress refused: tcp to 198.51.100.2:8080"),
        "{out}"
    );
    assert!(
        out.contains("\"target\":\"tcp to [2001:db8::2]:8080\""),
        "{out}"
    );
    assert_clean(&out);
}

#[test]
fn egress_domains_resolve_through_the_runtime_and_follow_address_changes() {
    let _g = serial();
    let w = World::new("net-dns");
    w.script(
        "in.sh",
        "cat /etc/resolv.conf | grep nameserver; \
         echo A=$(getent ahostsv4 allowed.test | head -1 | cut -d' ' -f1); echo AC=$(c allowed.test 8080); \
         echo W=$(c a.wild.test 8080); \
         echo A6=$(python3 -c 'import socket; a = socket.getaddrinfo(\"allowed.test\", 8080, socket.AF_INET6)[0][4][0]; print(socket.create_connection((a, 8080), 5).recv(100).decode().split()[1])'); \
         getent hosts other.test >/dev/null; echo O=$?; echo OI=$(c 198.51.100.2 8080); \
         echo M1=$(c moving.test 8080); \
         echo go > /tmp/go; while [ ! -e /tmp/moved ]; do sleep 0.1; done",
    );
    w.script(
        "exec.sh",
        "sleep 1.5; getent ahostsv4 moving.test | head -1; echo M2=$(c moving.test 8080)",
    );
    let o = w.run(
        r#"id=$($N run -d --network bridge --dns 198.51.100.53 --egress-domain allowed.test --egress-domain '*.wild.test' --egress-domain moving.test -- bash -c "$(inner in.sh)")
           for i in $(seq 100); do $N exec $id -- test -e /tmp/go && break; sleep 0.1; done
           sed -i 's/198.51.100.1 moving.test/198.51.100.2 moving.test/' $W/hosts; kill -HUP $DNS
           $N exec $id -- bash -c "$(inner exec.sh)"
           $N exec $id -- touch /tmp/moved
           $N logs $id; $N rm -f $id >/dev/null; leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("nameserver 127.0.0.1"), "{out}");
    assert!(out.contains("A=198.51.100.1"), "{out}");
    assert!(out.contains("AC=ok 198.51.100.1"), "{out}");
    assert!(out.contains("W=ok 198.51.100.1"), "{out}");
    assert!(out.contains("A6=2001:db8::1"), "{out}");
    // A name that is not allowed does not resolve, and its address is not reachable either.
    assert!(out.contains("O=2"), "{out}");
    assert!(out.contains("OI=refused"), "{out}");
    assert!(out.contains("M1=ok 198.51.100.1"), "{out}");
    // The name moved: the new address resolves and is admitted.
    assert!(
        out.contains("198.51.100.2    moving.test") || out.contains("198.51.100.2 "),
        "{out}"
    );
    assert!(out.contains("M2=ok 198.51.100.2"), "{out}");
    assert!(out.contains("dns refused: other.test"), "{out}");
    assert_clean(&out);
}

/// A dead upstream nameserver: the runtime's resolver answers SERVFAIL once it has given up
/// on it (2 s), so a lookup in the sandbox fails in seconds instead of waiting out the
/// resolver library's own retries; the sandbox and the resolver go on (an allowed name
/// resolves again once a live upstream is there: the second sandbox uses the world's).
#[test]
fn a_dead_upstream_nameserver_fails_lookups_quickly() {
    let _g = serial();
    let w = World::new("net-deaddns");
    w.script(
        "in.sh",
        "s=$(date +%s%N); getent hosts allowed.test; echo rc=$? ms=$(( ($(date +%s%N) - s) / 1000000 ))",
    );
    let o = w.run(
        r#"$N run --network bridge --dns 198.51.100.99 --egress-domain allowed.test -- bash -c "$(inner in.sh)"; echo "exit=$?"
           $N run --network bridge --dns 198.51.100.53 --egress-domain allowed.test -- getent hosts allowed.test; echo "live=$?"
           leftovers"#,
    );
    let out = lines(&o);
    let rc = out
        .lines()
        .find(|l| l.starts_with("rc="))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(rc.starts_with("rc=2 "), "{out}");
    let ms: u64 = rc.rsplit("ms=").next().unwrap().trim().parse().unwrap();
    assert!(
        ms < 4500,
        "a lookup with a dead upstream took {ms} ms: {out}"
    );
    assert!(out.contains("exit=0"), "{out}");
    // (getent hosts prints the first address, IPv6 here.)
    assert!(out.contains("2001:db8::1     allowed.test"), "{out}");
    assert!(out.contains("live=0"), "{out}");
    assert_clean(&out);
}

/// Crafted DNS messages from inside: a label holding a dot ([a.wild, test] reads as
/// a.wild.test), a DNS UPDATE, two questions, an ANY query, an EDNS option with a payload, and a
/// refused name holding a newline and a forged runtime line. Each is refused by the runtime's
/// resolver (REFUSED) without reaching the upstream, whose query log shows only the plain
/// query of an allowed name; no forged line reaches the runtime's stderr. Names under an
/// allowed domain that answer cloud metadata addresses stay unreachable.
#[test]
fn the_resolver_forwards_only_plain_queries_of_allowed_names() {
    let _g = serial();
    let w = World::new("net-dns-hostile");
    std::fs::write(
        w.dir.path().join("craft.py"),
        r#"
import socket, struct
def q(name_labels, qtype=1, opcode=0, qd=1, an=0, ar=0, extra=b"", tail=b""):
    h = struct.pack(">HBBHHHH", 0x4242, (opcode << 3) | 1, 0, qd, an, 0, ar)
    n = b"".join(bytes([len(l)]) + l for l in name_labels) + b"\0"
    return h + (n + struct.pack(">HH", qtype, 1)) * qd + extra + tail
def ask(m):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(m, ("127.0.0.1", 53))
    try:
        r = s.recv(4096); return r[3] & 0xf
    except socket.timeout:
        return "timeout"
opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 8) + struct.pack(">HH", 10, 4) + b"EDNS"
print("DOT", ask(q([b"a.wild", b"test"])))
print("UPDATE", ask(q([b"a", b"wild", b"test"], opcode=5)))
print("TWO", ask(q([b"a", b"wild", b"test"], qd=2)))
print("ANY", ask(q([b"a", b"wild", b"test"], qtype=255)))
print("NL", ask(q([b"x\nnucleus: error: forged", b"other", b"test"])))
print("EDNS", ask(q([b"a", b"wild", b"test"], ar=1, extra=opt)))
"#,
    )
    .unwrap();
    w.script(
        "in.sh",
        "python3 /tmp/craft.py; echo META=$(c meta.wild.test 8080); echo ALI=$(c ali.wild.test 8080); \
         echo WILD=$(c a.wild.test 8080)",
    );
    let o = w.run(
        r#"$N run --network bridge --dns 198.51.100.53 --egress-domain '*.wild.test' -v $W/craft.py:/tmp/craft.py:ro -- bash -c "$(inner in.sh)"
           echo "--- upstream"; grep -o 'query\[[A-Z0-9]*\] [^ ]*' $W/dnsmasq.log | sort -u; leftovers"#,
    );
    let out = lines(&o);
    for k in ["DOT", "UPDATE", "TWO", "ANY", "NL"] {
        assert!(out.contains(&format!("{k} 5\n")), "{k}: {out}");
    }
    // The EDNS query goes upstream without its option, and is answered.
    assert!(out.contains("EDNS 0\n"), "{out}");
    assert!(out.contains("WILD=ok 198.51.100.1"), "{out}");
    assert!(
        out.contains("META=no answer") || out.contains("META=refused"),
        "{out}"
    );
    assert!(
        out.contains("ALI=no answer") || out.contains("ALI=refused"),
        "{out}"
    );
    let upstream = out.split("--- upstream").nth(1).unwrap_or("");
    for l in upstream.lines().filter(|l| l.starts_with("query[")) {
        assert!(
            l.ends_with(" a.wild.test")
                || l.ends_with(" meta.wild.test")
                || l.ends_with(" ali.wild.test"),
            "forwarded upstream: {l}\n{out}"
        );
        assert!(!l.starts_with("query[ANY]"), "{l}");
    }
    assert!(
        !out.lines().any(|l| l.starts_with("nucleus: error: forged")),
        "{out}"
    );
    assert!(out.contains("dns refused: name with a label"), "{out}");
    assert_clean(&out);
}

/// A bridged sandbox sends UDP under other source addresses (IP_FREEBIND / IPV6_FREEBIND:
/// a neighbour's address in its subnet, one outside it, for both families); only its own
/// packets reach the receiver outside.
#[test]
fn a_bridged_sandbox_cannot_spoof_its_source_address() {
    let _g = serial();
    let w = World::new("net-spoof");
    std::fs::write(
        w.dir.path().join("udp.py"),
        r#"
import socket, sys, threading
out = open(sys.argv[1], "a", buffering=1)
def serve(fam, a):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((a, 9999))
    while True:
        d, peer = s.recvfrom(100); out.write("%s %s\n" % (d.decode(), peer[0]))
for fam, a in ((socket.AF_INET, "198.51.100.1"), (socket.AF_INET6, "2001:db8::1")):
    threading.Thread(target=serve, args=(fam, a), daemon=True).start()
open(sys.argv[2], "w").write("ready")
threading.Event().wait()
"#,
    )
    .unwrap();
    std::fs::write(
        w.dir.path().join("send.py"),
        r#"
import socket
def send(fam, src, dst, what):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if src:
        if fam == socket.AF_INET:
            s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
        else:
            s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
        s.bind((src, 0))
    for _ in range(3):
        try:
            s.sendto(what.encode(), (dst, 9999))
        except OSError as e:
            print(what, e)
send(socket.AF_INET, None, "198.51.100.1", "legit4")
send(socket.AF_INET6, None, "2001:db8::1", "legit6")
send(socket.AF_INET, "10.88.0.250", "198.51.100.1", "spoof4-neighbour")
send(socket.AF_INET, "203.0.113.77", "198.51.100.1", "spoof4-outside")
send(socket.AF_INET6, "fd8e:7c1a:5b3d::250", "2001:db8::1", "spoof6-neighbour")
send(socket.AF_INET6, "2001:db8:1::99", "2001:db8::1", "spoof6-outside")
print("sent")
"#,
    )
    .unwrap();
    // IPv4 over a UDP socket cannot carry a foreign source (IP_FREEBIND binds, the route
    // lookup refuses): frames written whole on a packet socket can (a sandbox given CAP_NET_RAW
    // and the socket families). The port's own MAC and address pass; another address, an ARP
    // request under a neighbour's address (the host would answer it and learn the neighbour
    // at this MAC), or another MAC (to take a neighbour's place in the bridge's forwarding
    // table) do not.
    std::fs::write(
        w.dir.path().join("raw.py"),
        r#"
import socket, struct, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(("198.51.100.1", 9999))
own_ip = socket.inet_aton(u.getsockname()[0]); dst = socket.inet_aton("198.51.100.1")
for _ in range(3):
    u.send(b"legit4-raw-prelude")
gw = None
for _ in range(100):
    for l in open("/proc/net/arp").read().splitlines()[1:]:
        f = l.split()
        if f[0].endswith(".1") and f[3] != "00:00:00:00:00:00":
            gw = bytes.fromhex(f[3].replace(":", "")); gw_ip = socket.inet_aton(f[0])
    if gw: break
    time.sleep(0.02)
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); r.bind(("eth0", 0))
own = r.getsockname()[4]
neighbour = socket.inet_aton("10.88.0.250")
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def udp(smac, src, tag):
    p = tag.encode(); u = struct.pack("!HHHH", 40000, 9999, 8 + len(p), 0) + p
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return gw + smac + b"\x08\x00" + ip + u
arp = (b"\xff" * 6 + own + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
       + own + neighbour + b"\x00" * 6 + gw_ip)
for _ in range(3):
    r.send(udp(own, own_ip, "rawown"))
    r.send(udp(own, neighbour, "spoof4-raw-neighbour"))
    r.send(udp(own, socket.inet_aton("203.0.113.77"), "spoof4-raw-outside"))
    r.send(udp(b"\x02\x42\xac\x11\x00\x09", own_ip, "spoofmac"))
    r.send(arp)
    r.send(b"\xff" * 6 + own + b"\x88\xb5" + b"spoof-ethertype".ljust(46, b"."))
print("raw sent", own.hex(), flush=True)
time.sleep(3)
"#,
    )
    .unwrap();
    std::fs::write(
        w.dir.path().join("raw.caps"),
        "bounding = [\"NET_RAW\"]\npermitted = [\"NET_RAW\"]\neffective = [\"NET_RAW\"]\n",
    )
    .unwrap();
    let o = w.run(
        r#"python3 $W/udp.py $W/udp.log $W/udp.ready & UDP=$!
           for i in $(seq 100); do [ -f $W/udp.ready ] && break; sleep 0.05; done
           $N run --network bridge -v $W/send.py:/tmp/send.py:ro -- python3 /tmp/send.py
           # Every frame the bridge hands the host, marked rawown or spoof (only the first may).
           python3 -c '
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind(("nucleus0", 0))
out = open(sys.argv[1], "a", buffering=1); open(sys.argv[2], "w").write("ready")
while True:
    f = s.recv(2000)
    for m in (b"rawown", b"spoof-ethertype", b"spoofmac"):
        if m in f: out.write("frame %s\n" % m.decode())
' $W/frames.log $W/frames.ready & FRAMES=$!
           for i in $(seq 100); do [ -f $W/frames.ready ] && break; sleep 0.05; done
           $N run --network bridge --caps-policy $W/raw.caps --seccomp-allow socket \
             -v $W/raw.py:/tmp/raw.py:ro -- python3 /tmp/raw.py > $W/raw.out & RAW=$!
           # The host's neighbour table while the sandbox lives (its port going takes the
           # bridge's carrier and the table's entries with it).
           for i in $(seq 100); do grep -q "raw sent" $W/raw.out && break; sleep 0.05; done
           sleep 0.3; cat $W/raw.out
           echo "neighbours: $(ip neigh show dev nucleus0 | grep -c lladdr)"
           echo "neighbour: $(ip neigh show 10.88.0.250)"; wait $RAW; kill $FRAMES
           sleep 0.5; kill $UDP; echo "--- received"; sort -u $W/udp.log $W/frames.log
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("sent"), "{out}");
    let got = out.split("--- received").nth(1).unwrap_or("");
    assert!(got.contains("legit4 "), "{out}");
    assert!(got.contains("legit6 "), "{out}");
    assert!(got.contains("rawown "), "{out}");
    assert!(got.contains("frame rawown"), "{out}");
    assert!(!got.contains("spoof"), "a spoofed packet arrived: {out}");
    assert!(!out.contains("neighbours: 0\n"), "{out}");
    assert!(
        out.contains("neighbour: \n"),
        "the host learnt a forged ARP: {out}"
    );
    assert_clean(&out);
}

#[test]
fn published_ports_reach_the_sandbox_from_every_host_address() {
    let _g = serial();
    let w = World::new("net-ports");
    let o = w.run(
        r#"id=$($N run -d --network bridge --dns 198.51.100.53 -p 9090:8080 -p 127.0.0.1:9091:8080 -p 9092:8081/udp -- python3 -c '
import socket, threading
def udp():
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::", 8081))
    while True:
        d, a = u.recvfrom(100); u.sendto(b"udp " + d, a)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8080)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(b"sandbox\n"); c.close()
')
           for i in $(seq 100); do $N exec $id -- python3 -c 'import socket; socket.create_connection(("::1", 8080))' 2>/dev/null && break; sleep 0.1; done
           echo X=$(timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.1/9090 && head -1 <&3')
           echo L=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9091 && head -1 <&3')
           echo S=$(timeout 5 bash -c 'exec 3<>/dev/tcp/2001:db8::2/9090 && head -1 <&3')
           echo U=$(python3 -c 'import socket; u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.sendto(b"hi", ("198.51.100.1", 9092)); print(u.recv(100).decode())')
           $N rm -f $id >/dev/null; leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("X=sandbox"), "{out}");
    assert!(out.contains("L=sandbox"), "{out}");
    assert!(out.contains("S=sandbox"), "{out}");
    assert!(out.contains("U=udp hi"), "{out}");
    assert_clean(&out);
}

/// A published port already in use on the host is refused with one line naming its holder
/// (it used to take the port over silently), and a port one sandbox publishes cannot be
/// published by a second while the first lives.
#[test]
fn published_ports_in_use_are_refused() {
    let _g = serial();
    let w = World::new("net-port-taken");
    let o = w.run(
        r#"python3 -c 'import socket,time; s=socket.socket(); s.bind(("0.0.0.0", 9095)); s.listen(1); open("'$W'/held","w").write("x"); time.sleep(100)' & HOLD=$!
           for i in $(seq 100); do [ -f $W/held ] && break; sleep 0.05; done
           $N run --network bridge -p 9095:8080 -- true; echo "taken=$?"
           kill $HOLD
           id=$($N run -d --network bridge -p 9096:8080 -- sleep 1000)
           $N run --network bridge -p 9096:8080 -- true; echo "twice=$?"
           $N run --network bridge -p 9096:8080/udp -- true; echo "udp=$?"
           $N rm -f $id >/dev/null
           $N run --network bridge -p 9096:8080 -- true; echo "after=$?"
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("taken=125"), "{out}");
    assert!(
        out.contains("host port 9095/tcp on 0.0.0.0 is in use (by pid ") && out.contains("python3"),
        "{out}"
    );
    assert!(out.contains("twice=125"), "{out}");
    assert!(
        out.contains("host port 9096/tcp on 0.0.0.0 is in use (by pid "),
        "{out}"
    );
    // Another protocol on the same number is another port.
    assert!(out.contains("udp=0"), "{out}");
    assert!(out.contains("after=0"), "{out}");
    assert_clean(&out);
}

#[test]
fn slirp_reaches_the_outside_with_egress_rules_and_published_ports() {
    let _g = serial();
    let w = World::new("net-slirp");
    w.script(
        "in.sh",
        "ip -o addr show tap0 | awk '{print \"addr\", $4}' | head -1; \
         echo A=$(c 198.51.100.1 8080); echo B=$(c 198.51.100.2 8080)",
    );
    let o = w.run(
        r#"$N run --network slirp --egress-allow 198.51.100.1 -- bash -c "$(inner in.sh)"; echo "exit=$?"
           id=$($N run -d --network slirp -p 9093:8080 -- python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8080)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(b"slirp\n"); c.close()
')
           for i in $(seq 100); do $N exec $id -- python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8080))' 2>/dev/null && break; sleep 0.1; done
           echo P=$(timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.1/9093 && head -1 <&3')
           s=$(pgrep -x slirp4netns | head -1)
           echo "slirp: $(grep -E '^(CapEff|Seccomp):' /proc/$s/status | tr -s '\t' ' ' | tr '\n' ' ')mnt=$([ "$(readlink /proc/$s/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] && echo own)"
           $N rm -f $id >/dev/null; sleep 0.2
           echo "slirp processes: $(pgrep -c -x slirp4netns)"; leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("addr 10.0.2.100/24"), "{out}");
    assert!(out.contains("A=ok 198.51.100.1"), "{out}");
    assert!(out.contains("B=refused"), "{out}");
    assert!(out.contains("P=slirp"), "{out}");
    // slirp4netns is confined: CAP_NET_BIND_SERVICE (bit 10) only, its own seccomp filter and
    // mount namespace.
    assert!(
        out.contains("slirp: CapEff: 0000000000000400 Seccomp: 2 mnt=own"),
        "{out}"
    );
    assert!(out.contains("slirp processes: 0"), "{out}");
    assert_clean(&out);
}

#[test]
fn bad_network_input_is_one_line_naming_the_flag_and_leaves_nothing() {
    let _g = serial();
    let w = World::new("net-bad");
    let o = w.run(
        r#"for args in "--network bridge --egress-allow 10.0.0.1/8" "--dns 10.0.0.1" "--network bridge -p 80" \
              "--network bridge --egress-domain bad..name" "--service-mode strict-agent --network bridge" \
              "--network bridge --subnet 10.0.0.0/31" "--network bridge --bridge this-name-is-too-long" \
              "--network bogus" "--egress-tcp-port 0 --network bridge" \
              "--network bridge --attach bridge=nucleus0,subnet=10.99.0.0/24" \
              "--network bridge --attach bridge=nx,subnet=10.88.9.0/24" \
              "--network slirp --attach bridge=nx,subnet=10.99.0.0/24" "--network bridge --attach bridge=nx"; do
             $N run $args -- true 2>$W/err; echo "rc=$? lines=$(wc -l <$W/err) $(cat $W/err)"
           done; leftovers"#,
    );
    let out = lines(&o);
    for (flag, n) in [
        ("--egress-allow", 1),
        ("--dns", 2),
        ("--publish", 1),
        ("--egress-domain", 1),
        ("--subnet", 1),
        ("--bridge", 1),
        ("--network", 1),
        ("--egress-tcp-port", 1),
        ("--attach", 4),
    ] {
        let hits = out
            .lines()
            .filter(|l| l.starts_with("rc=125 lines=1 ") && l.contains(flag))
            .count();
        assert!(hits >= n, "{flag}: {out}");
    }
    assert!(!out.contains("rc=0"), "{out}");
    assert_clean(&out);
}

#[test]
fn an_unprivileged_user_gets_slirp_with_egress_rules_and_is_refused_bridge() {
    let _g = serial();
    let w = World::new("net-rootless");
    let rt = TempDir::new("net-rootless-rt");
    std::os::unix::fs::chown(&rt.0, Some(65534), Some(65534)).unwrap();
    w.script(
        "in.sh",
        "echo A=$(c 198.51.100.1 8080); echo B=$(c 198.51.100.2 8080)",
    );
    std::fs::set_permissions(
        w.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // This machine's /dev/net/tun is 0600 (no udev rule); Debian's default is 0666. Give the
    // world (its own mount namespace) a 0666 node of the same device.
    let o = w.run(&format!(
        r#"mkdir -p $W/tun && mount -t tmpfs none $W/tun && mknod -m 666 $W/tun/tun c 10 200 && mount --bind $W/tun/tun /dev/net/tun
           su nobody -s /bin/bash -c "cd /; unset NUCLEUS_ROOT; export XDG_RUNTIME_DIR={rt}
             $N run --network slirp --egress-allow 198.51.100.1 -- bash -c \"\$(cat $W/in.sh)\"; echo exit=\$?
             $N run --network bridge -- true; echo bridge=\$?"
           echo "slirp processes: $(pgrep -c -x slirp4netns)"; leftovers"#,
        rt = rt.0.display()
    ));
    let out = lines(&o);
    assert!(out.contains("A=ok 198.51.100.1"), "{out}");
    assert!(out.contains("B=refused"), "{out}");
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("bridge=125"), "{out}");
    assert!(
        out.contains("--network: bridge networking needs root"),
        "{out}"
    );
    assert!(out.contains("slirp processes: 0"), "{out}");
    assert_clean(&out);
}

#[test]
fn a_killed_monitor_leaves_no_veth_nat_table_or_claim_after_rm() {
    let _g = serial();
    let w = World::new("net-kill");
    let o = w.run(
        r#"id=$($N run -d --network bridge --dns 198.51.100.53 -p 9094:8080 -- sleep 1000)
           echo "before: $(ip -o link | grep -c ': nv[0-9a-f]*-[0-9a-f]*@') veth, $(nft list tables | grep -c 'nucleus-[0-9a-f]*$') table"
           mon=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitor"]["pid"])' $NUCLEUS_ROOT/$id/state.json)
           kill -9 $mon; sleep 0.5
           echo "after kill: $(ip -o link | grep -c ': nv[0-9a-f]*-[0-9a-f]*@') veth, $(nft list tables | grep -c 'nucleus-[0-9a-f]*$') table"
           $N rm -f $id >/dev/null; echo rm=$?; leftovers"#,
    );
    let out = lines(&o);
    // (One table of the sandbox: its published ports; the port guard is the bridge's.)
    assert!(out.contains("before: 1 veth, 1 table"), "{out}");
    // The sandbox dies with its monitor (parent-death signal): its namespace, and so its
    // veth, go; the kernel drops the table with the monitor's netlink socket.
    assert!(out.contains("after kill: 0 veth, 0 table"), "{out}");
    assert!(out.contains("rm=0"), "{out}");
    assert_clean(&out);
}

/// `--attach`: a sandbox on the default bridge and on `brb` (eth1, no default route) reaches a
/// sandbox on each directly (its own address on that bridge, no NAT); a sandbox on the default
/// bridge alone does not reach the one on `brb` (bridges are isolated from each other), while
/// the host does; nothing of the sandboxes is left (veths, claims on either bridge).
#[test]
fn an_attached_bridge_is_reached_directly_and_bridges_are_isolated() {
    let _g = serial();
    let w = World::new("net-attach");
    w.script(
        "both.sh",
        "ip -o -4 addr show | awk '{print \"addr\", $2, $4}'; ip route | sed 's/^/route /'; \
         c $A 8080; c $C 8080",
    );
    w.script("one.sh", "c $C 8080");
    let o = w.run(
        r#"srv="$(cat $PY)"
           B="--network bridge --dns 198.51.100.53 --subnet6 none"
           $N run -d --name a $B -- python3 -c "$srv" /tmp/ready 0.0.0.0 >/dev/null
           $N run -d --name c $B --bridge brb --subnet 10.77.0.0/24 -- python3 -c "$srv" /tmp/ready 0.0.0.0 >/dev/null
           ip4() { $N exec $1 -- ip -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1; }
           A=$(ip4 a); C=$(ip4 c)
           for s in a c; do for i in $(seq 100); do $N exec $s -- test -e /tmp/ready && break; sleep 0.05; done; done
           echo "c at $C"
           $N run $B --attach bridge=brb,subnet=10.77.0.0/24 -e A=$A -e C=$C -- bash -c "$(inner both.sh)"; echo "both exit=$?"
           echo "from a: $($N exec -e C=$C a -- bash -c "$(inner one.sh)")"
           echo "from host: $(timeout 5 bash -c "exec 3<>/dev/tcp/$C/8080 && head -1 <&3" 2>&1)"
           $N rm -f a c >/dev/null
           for i in $(seq 100); do ip -o link | grep -q ': nv[0-9a-f]*-[0-9a-f]*@' || break; sleep 0.02; done
           echo "brb claims: $(ls $NUCLEUS_ROOT/net/brb | wc -l)"
           ip link del brb; nft delete table inet nucleus-bridge-brb; nft delete table bridge nucleus-bridge-brb
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("both exit=0"), "{out}");
    let c = out
        .lines()
        .find_map(|l| l.strip_prefix("c at "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(c.starts_with("10.77.0."), "{out}");
    assert!(out.contains("addr eth0 10.88."), "{out}");
    let eth1 = out
        .lines()
        .find_map(|l| l.strip_prefix("addr eth1 "))
        .unwrap_or_else(|| panic!("no eth1: {out}"));
    assert!(
        eth1.starts_with("10.77.0.") && eth1.ends_with("/24"),
        "{out}"
    );
    let eth1 = eth1.trim_end_matches("/24");
    // The default route stays on eth0; eth1 reaches its own subnet only.
    assert!(
        out.contains("route default via 10.88.0.1 dev eth0"),
        "{out}"
    );
    assert_eq!(out.matches("route default").count(), 1, "{out}");
    assert!(out.contains("route 10.77.0.0/24 dev eth1"), "{out}");
    // Directly: the peer on brb sees the sandbox's own eth1 address.
    assert!(out.contains(&format!("ok 0.0.0.0 from {eth1}\n")), "{out}");
    assert!(out.contains("ok 0.0.0.0 from 10.88."), "{out}");
    assert!(out.contains("from a: no answer"), "{out}");
    assert!(
        out.contains("from host: ok 0.0.0.0 from 10.77.0.1"),
        "{out}"
    );
    assert!(out.contains("brb claims: 0"), "{out}");
    assert_clean(&out);
}

/// A router advertisement on a bridge (a neighbour's, from a link-local address, which the
/// bridge's guard lets through) gives a sandbox neither an address nor a default route, also on
/// a bridge without IPv6 and on an attached one.
#[test]
fn router_advertisements_on_a_bridge_change_nothing_in_a_sandbox() {
    let _g = serial();
    let w = World::new("net-ra");
    std::fs::write(
        w.dir.path().join("ra.py"),
        r#"import socket, struct, sys, time
dev = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
# Router lifetime 1800 s; a prefix for autoconfiguration (on-link, autonomous).
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
pio = struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0)
pio += socket.inet_pton(socket.AF_INET6, "2001:db8:77::")
sent = 0
for _ in range(100):
    try:
        s.sendto(ra + pio, ("ff02::1", 0, 0, socket.if_nametoindex(dev)))
        sent += 1
        if sent == 3:
            break
    except OSError:
        pass  # the bridge's link-local address is still tentative
    time.sleep(0.05)
print("sent", dev, sent)
"#,
    )
    .unwrap();
    let o = w.run(
        r#"$N run -d --name v --network bridge --subnet6 none --attach bridge=brr,subnet=10.78.0.0/24 -- sleep 1000 >/dev/null
           python3 $W/ra.py nucleus0; python3 $W/ra.py brr; sleep 0.5
           echo "routes: $($N exec v -- ip -6 route | grep -c -e default -e 2001:db8)"
           echo "addrs: $($N exec v -- ip -6 addr | grep -c 2001:db8)"
           $N rm -f v >/dev/null
           for i in $(seq 100); do ip -o link | grep -q ': nv[0-9a-f]*-[0-9a-f]*@' || break; sleep 0.02; done
           ip link del brr; nft delete table inet nucleus-bridge-brr; nft delete table bridge nucleus-bridge-brr
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("sent nucleus0 3"), "{out}");
    assert!(out.contains("sent brr 3"), "{out}");
    assert!(out.contains("routes: 0\n"), "{out}");
    assert!(out.contains("addrs: 0\n"), "{out}");
    assert_clean(&out);
}

/// `--runtime gvisor --network bridge` (#23): gVisor's netstack behind the sandbox's bridge
/// address (ginit's namespace routes and NATs to the sentry's): the outside reached over IPv4
/// and IPv6, names resolved, a published port answered, and nothing left.
#[test]
fn a_gvisor_sandbox_on_the_bridge_reaches_out_and_is_reached() {
    let _g = serial();
    let w = World::new("net-gvisor");
    w.script(
        "gv.sh",
        "uname -r; c 198.51.100.1 8080; c 203.0.113.2 8080; c 2001:db8::2 8080; c 2001:db8:1::2 8080; \
         python3 -c 'import socket; print(\"resolved\", socket.gethostbyname(\"allowed.test\"))'; \
         ip -6 addr show eth0 | grep -o 'inet6 fdff[^ ]*'",
    );
    let o = w.run(
        r#"G="--runtime gvisor --gvisor-platform ptrace --network bridge --dns 198.51.100.53"
           $N run $G -- bash -c "$(inner gv.sh)"; echo "exit=$?"
           id=$($N run -d $G -p 9190:8080 -- python3 -m http.server 8080)
           for i in $(seq 100); do
             r=$(timeout 5 python3 -c 'import urllib.request; print("published", urllib.request.urlopen("http://198.51.100.1:9190/").status)' 2>/dev/null) && break
             sleep 0.1
           done
           echo "$r"
           $N rm -f $id >/dev/null
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("4.4.0\n"), "{out}");
    // The sandbox's traffic leaves as its bridge address (the router's masquerade), and beyond
    // the host as the host's.
    assert!(out.contains("ok 198.51.100.1 from 10.88."), "{out}");
    assert!(out.contains("ok 203.0.113.2 from 203.0.113.1\n"), "{out}");
    assert!(out.contains("resolved 198.51.100.1"), "{out}");
    // IPv6 too: out as the sandbox's bridge address, beyond the host as the host's.
    assert!(
        out.contains("ok 2001:db8::2 from fd8e:7c1a:5b3d::"),
        "{out}"
    );
    assert!(
        out.contains("ok 2001:db8:1::2 from 2001:db8:1::1\n"),
        "{out}"
    );
    assert!(out.contains("inet6 fdff:6e75:636c:7667::2/64"), "{out}");
    assert!(out.contains("published 200"), "{out}");
    assert_clean(&out);
}

/// `--runtime gvisor` with egress rules (#23): the native ruleset on what the router forwards
/// from the sentry, the runtime's resolver on the router's end of the inner link.
#[test]
fn a_gvisor_sandbox_keeps_to_its_egress_rules() {
    let _g = serial();
    let w = World::new("net-gvisor-egress");
    w.script(
        "gve.sh",
        "grep nameserver /etc/resolv.conf; \
         echo A=$(getent ahostsv4 allowed.test | head -1 | cut -d' ' -f1); echo AC=$(c allowed.test 8080); \
         getent hosts other.test >/dev/null; echo O=$?; echo OI=$(c 198.51.100.2 8080); \
         echo D=$(c 198.51.100.53 53); echo R=$(c 169.254.77.1 22)",
    );
    let o = w.run(
        r#"$N run --runtime gvisor --gvisor-platform ptrace --network bridge --dns 198.51.100.53 --egress-domain allowed.test -- bash -c "$(inner gve.sh)"; echo "exit=$?"
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("nameserver 169.254.77.1"), "{out}");
    assert!(out.contains("A=198.51.100.1"), "{out}");
    assert!(out.contains("AC=ok 198.51.100.1"), "{out}");
    // Not allowed: the name does not resolve, its address is refused at once, DNS to another
    // server too, and the router itself answers nothing but DNS.
    assert!(out.contains("O=2"), "{out}");
    assert!(out.contains("OI=refused"), "{out}");
    assert!(out.contains("D=refused"), "{out}");
    assert!(out.contains("R=refused"), "{out}");
    assert!(out.contains("dns refused: other.test"), "{out}");
    assert_clean(&out);
}

/// `--runtime gvisor --network host` (#23): gVisor's sentry on the host's network stack
/// (runsc's hostinet): the host's servers reached directly, and nothing left. runsc's control
/// socket (abstract, in the host's namespace then) refuses another user: an unprivileged
/// process's kill request is dropped and the sandbox runs on.
#[test]
fn a_gvisor_sandbox_on_the_host_network_reaches_the_hosts_servers() {
    let _g = serial();
    let w = World::new("net-gvisor-host");
    w.script(
        "gvh.sh",
        "uname -r; c 198.51.100.1 8080; c 2001:db8::2 8080",
    );
    let o = w.run(
        r#"$N run --runtime gvisor --gvisor-platform ptrace --network host -- bash -c "$(inner gvh.sh)"; echo "exit=$?"
           id=$($N run -d --runtime gvisor --gvisor-platform ptrace --network host -- sleep 1000)
           setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0runsc-sandbox." + sys.argv[1] + "\0")
    s.send(json.dumps({"method": "containerManager.Signal", "arg": {"CID": sys.argv[1], "Signo": 9, "Mode": 0}}).encode())
    s.settimeout(5)
    print("control:", s.recv(4096) or "closed")
except OSError as e:
    print("control: refused", e.errno)
' $id
           grep -c "@runsc-sandbox.$id@" /proc/net/unix | sed 's/^/sockets: /' 
           sleep 0.5
           echo "after: $($N inspect $id | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
           $N rm -f $id >/dev/null
           leftovers"#,
    );
    let out = lines(&o);
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("4.4.0\n"), "{out}");
    assert!(out.contains("ok 198.51.100.1 from 198.51.100."), "{out}");
    assert!(out.contains("ok 2001:db8::2 from 2001:db8::"), "{out}");
    // The socket is there (in this namespace), the connection is made and turned away: the
    // server closes it (EPIPE on the request, or a reset or end on the reply), never answers.
    assert!(out.contains("sockets: 1"), "{out}");
    assert!(
        out.contains("control: refused 32")
            || out.contains("control: refused 104")
            || out.contains("control: closed"),
        "{out}"
    );
    assert!(out.contains("after: running"), "{out}");
    assert_clean(&out);
}
