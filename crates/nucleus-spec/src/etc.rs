//! The synthetic /etc: identity and name-resolution files written for each sandbox.

/// passwd for the workload user, root and nobody.
pub fn passwd(user: &str, uid: u32, gid: u32, home: &str) -> String {
    let mut s = String::from("root:x:0:0:root:/root:/bin/sh\n");
    if uid != 0 {
        s.push_str(&format!("{user}:x:{uid}:{gid}:{user}:{home}:/bin/sh\n"));
    }
    s.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    s
}

/// group for root, the workload's groups and nogroup.
pub fn group(user: &str, gid: u32, extra: &[(String, u32)]) -> String {
    let mut s = String::from("root:x:0:\n");
    let mut seen = vec![0u32, 65534];
    if !seen.contains(&gid) {
        s.push_str(&format!("{user}:x:{gid}:\n"));
        seen.push(gid);
    }
    for (name, g) in extra {
        if !seen.contains(g) {
            s.push_str(&format!("{name}:x:{g}:{user}\n"));
            seen.push(*g);
        }
    }
    s.push_str("nogroup:x:65534:\n");
    s
}

pub fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback {hostname}\n"
    )
}

pub fn nsswitch() -> String {
    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
        .to_string()
}

/// With no network there is nothing to resolve; the file still exists so tools do not complain.
pub fn resolv_conf_offline() -> String {
    "# nucleus: this sandbox has no network\n".to_string()
}
