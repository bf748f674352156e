//! One line from an MCP client.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nucleus_spec::mcp;

fuzz_target!(|line: &str| {
    if let Err((id, e)) = mcp::parse(line) {
        let r = mcp::response(&id, Err(e));
        assert!(!r.contains('\n'));
        serde_json::from_str::<serde_json::Value>(&r).expect("a response is JSON");
    }
});
