//! Makes `-Tlink.ld` (from .cargo/config.toml) resolvable and relinks when it changes.
fn main() {
    println!("cargo:rustc-link-search={}", env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=link.ld");
}
