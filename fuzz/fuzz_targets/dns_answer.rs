//! An answer from an upstream nameserver (first two bytes: the id asked for).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 2 {
        let id = u16::from_be_bytes([data[0], data[1]]);
        let _ = nucleus_spec::dns::answers(&data[2..], id);
    }
});
