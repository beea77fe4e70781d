//! Bakes the resolved tokio version into the binary for the report's runner_version,
//! read from Cargo.lock (which cargo has written or checked before any build script runs).
use std::{env, fs, path::Path};

fn main() {
    let lock = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = fs::read_to_string(&lock).expect("Cargo.lock beside Cargo.toml");
    let version = text
        .split("[[package]]")
        .find(|p| p.lines().any(|l| l.trim() == "name = \"tokio\""))
        .and_then(|p| p.lines().find_map(|l| l.trim().strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .expect("tokio in Cargo.lock");
    println!("cargo:rustc-env=TOKIO_VERSION={}", version);
}
