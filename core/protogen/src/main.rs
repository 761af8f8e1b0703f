//! Regenerates the prost code of the wire contract, or checks that the committed copy is
//! current (`--check`, used by CI). Needs `protoc` on PATH.

use std::path::PathBuf;
use std::process::ExitCode;

const GENERATED: &str = "sightline.v1.rs";

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let core = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("sightline-protogen-{}", std::process::id()));
    if let Err(e) = generate(&core, &out) {
        eprintln!("protogen: {e}");
        return ExitCode::FAILURE;
    }
    let fresh = match std::fs::read_to_string(out.join(GENERATED)) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("protogen: reading generated code: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::remove_dir_all(&out);
    let committed_path = core.join("src/proto").join(GENERATED);
    if check {
        let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
        if committed != fresh {
            eprintln!(
                "protogen: {} is stale; run `cargo run -p sightline-protogen`",
                committed_path.display()
            );
            return ExitCode::FAILURE;
        }
        println!("protogen: generated code is current");
    } else if let Err(e) = std::fs::write(&committed_path, fresh) {
        eprintln!("protogen: writing {}: {e}", committed_path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn generate(core: &std::path::Path, out: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    prost_build::Config::new()
        .out_dir(out)
        // Generated structs must not pull in std so the core stays no_std.
        .btree_map(["."])
        // The JSON view and the collector's outputs embed the generated messages.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        // JSON written before a field existed (the collector's batch records) still reads.
        .message_attribute(".", "#[serde(default)]")
        .compile_protos(
            &[core.join("proto/sightline/v1/batch.proto")],
            &[core.join("proto")],
        )
}
