//! `cargo run -p uniffi-bindgen -- generate --library <lib> --language <kotlin|swift|python>`:
//! generates the foreign sources from the metadata compiled into the library.

fn main() {
    uniffi::uniffi_bindgen_main()
}
