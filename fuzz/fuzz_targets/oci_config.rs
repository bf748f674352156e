//! An OCI bundle's config.json, parsed and planned.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nucleus_spec::oci;

fuzz_target!(|text: &str| {
    let facts = nucleus_spec::host::HostFacts {
        kernel: (6, 18),
        cpus: 2,
        ..Default::default()
    };
    match oci::parse(text) {
        Err(e) => assert!(!e.to_string().contains('\n')),
        Ok(b) => {
            let cx = oci::Context {
                id: "c1",
                bundle: std::path::Path::new("/b"),
                fifo: "/run/nucleus/c1/exec.fifo".into(),
                no_pivot: false,
                systemd_cgroup: false,
                rootless: false,
                facts: &facts,
            };
            if let Err(e) = oci::plan(&b, &cx) {
                assert!(!e.to_string().contains('\n'));
            }
        }
    }
});
