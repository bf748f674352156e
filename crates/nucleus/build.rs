//! The binary's link depends on files cargo does not see: scripts/cc-lld (the musl target's
//! linker driver) lays the release binary's code out in scripts/start-order.txt's order.
fn main() {
    println!("cargo:rerun-if-changed=../../scripts/start-order.txt");
    println!("cargo:rerun-if-changed=../../scripts/cc-lld");
    println!("cargo:rerun-if-env-changed=NUCLEUS_NO_ORDER");
    println!("cargo:rerun-if-env-changed=NUCLEUS_KEEP_SYMBOLS");
}
