//! A seccomp profile (docker/OCI JSON), compiled to BPF and run on one syscall.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nucleus_spec::seccomp::bpf::{compile, interpret, native_arch};
use nucleus_spec::seccomp::profile::{compile as compile_profile, parse, Target};

fuzz_target!(|text: &str| {
    if let Ok(p) = parse(text) {
        if let Ok(c) = compile_profile(&p, &Target::native((6, 1))) {
            let prog = compile(&c.filter).expect("a compiled profile assembles");
            let _ = interpret(&prog, native_arch(), 59, [0; 6]);
        }
    }
});
