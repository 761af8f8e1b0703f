//! Writes `bindings/c/include/sightline.h` from the `sightline-c` sources (config:
//! `bindings/c/cbindgen.toml`). With `--check`, writes nothing and fails if the checked-in
//! header differs from what the sources give, so the header can never drift.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: sightline-c-header [--check]  (unknown argument {other:?})");
            return ExitCode::from(2);
        }
    };
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let header = crate_dir.join("include/sightline.h");
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cbindgen.toml: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => {
            eprintln!("generating the header: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let current = std::fs::read(&header).unwrap_or_default();
    if check {
        if current == generated {
            println!("{} is current", header.display());
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "{} is stale: run `cargo run -p sightline-c-header` and commit it",
            header.display()
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&header, &generated) {
        eprintln!("{}: {e}", header.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", header.display());
    ExitCode::SUCCESS
}
