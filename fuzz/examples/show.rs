//! Prints the structured input a fuzz target reads from a file (a crash artifact, a seed):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example show -- store_resume FILE
//! ```
//!
//! For `store_resume` and `collector_ingest`, whose inputs are `sightline_fuzz`'s formats;
//! other targets read their bytes as they are.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, file] = args.as_slice() else {
        eprintln!("usage: show store_resume|collector_ingest FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    match target.as_str() {
        "store_resume" => {
            let input = sightline_fuzz::store::Input::parse(&data);
            println!("{input:#?}");
            for (key, value) in &input.stored().values {
                println!("{key}: {value:?}");
            }
        }
        "collector_ingest" => println!("{:#?}", sightline_fuzz::ingest::parse(&data)),
        other => {
            eprintln!("{other}: reads its bytes as they are");
            std::process::exit(2);
        }
    }
}
