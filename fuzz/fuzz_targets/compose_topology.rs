//! A compose topology file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nucleus_spec::compose;

fuzz_target!(|text: &str| {
    match compose::parse(text) {
        Err(problems) => problems.iter().for_each(|p| assert!(!p.to_string().contains('\n'))),
        Ok(t) => {
            let _ = compose::waves(&t);
        }
    }
});
