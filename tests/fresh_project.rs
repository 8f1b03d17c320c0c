//! The README's quickstarts compile in a fresh project whose Cargo.toml names only
//! `reauth` (and tokio): every crate they use comes through the facade's re-exports. The
//! tonic quickstart is the exception the README names: a gRPC client has tonic (and tower)
//! of its own, so its block builds with the feature `tonic` on and those two added.
//! Also: the README's state diagram is the core's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// The README's ```rust blocks, with rustdoc's hidden-line markers removed.
fn quickstarts() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(String::new()),
            None => {}
            Some(_) if line == "```" => blocks.push(current.take().unwrap()),
            Some(block) => {
                let shown = match line.strip_prefix('#') {
                    Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest.trim_start(),
                    _ => line,
                };
                block.push_str(shown);
                block.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn the_readme_quickstarts_compile_with_only_reauth_and_tokio() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if Command::new(&cargo).arg("--version").output().is_err() {
        eprintln!("skipped: cargo is not available to build a fresh project");
        return;
    }
    let blocks = quickstarts();
    assert!(blocks.len() >= 3, "the README lost its quickstarts");
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"fresh\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[workspace]\n\n[dependencies]\n\
             reauth = {{ path = {:?} }}\n\
             tokio = {{ version = \"1\", features = [\"rt-multi-thread\", \"macros\"] }}\n\
             tonic = {{ version = \"0.14\", optional = true, default-features = false, \
             features = [\"channel\"] }}\n\
             tower = {{ version = \"0.5\", optional = true, default-features = false }}\n\n\
             [features]\ntonic = [\"reauth/tonic\", \"dep:tonic\", \"dep:tower\"]\n{}",
            root.display().to_string(),
            tonic_bins(&blocks),
        ),
    )
    .unwrap();
    // The workspace's lock file: the same versions, resolvable offline.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let bins = dir.path().join("src/bin");
    std::fs::create_dir_all(&bins).unwrap();
    for (i, block) in blocks.iter().enumerate() {
        assert!(
            block.contains("fn main"),
            "quickstart {i} has no main:\n{block}"
        );
        // Doctests allow what sketches leave unused; so does this copy.
        let source = format!("#![allow(unused)]\n{block}");
        std::fs::write(bins.join(format!("quickstart{i}.rs")), source).unwrap();
    }
    // A target folder of its own next to ours: cargo holds our folder's lock while the
    // tests run, and a kept folder makes the second run fast.
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| root.join("target"))
        .join("fresh-project");
    // First without the feature (the tonic block is skipped: it requires it), so every
    // other block is shown to need only reauth and tokio; then the tonic block too.
    let deadline = Instant::now() + Duration::from_secs(900);
    for features in [&[][..], &["--features", "tonic"]] {
        let mut child = Command::new(&cargo)
            .args(["check", "--offline", "--bins", "--quiet"])
            .args(features)
            .current_dir(dir.path())
            .env("CARGO_TARGET_DIR", &target)
            .spawn()
            .expect("cargo check");
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cargo check of the fresh project took over 15 minutes");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            status.success(),
            "a README quickstart does not compile with only reauth and tokio {features:?} \
             (see above)"
        );
    }
}

/// `[[bin]]` entries for the blocks that use tonic: built only with the feature `tonic`.
fn tonic_bins(blocks: &[String]) -> String {
    let tonic: Vec<_> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.contains("tonic::"))
        .map(|(i, _)| {
            format!(
                "\n[[bin]]\nname = \"quickstart{i}\"\npath = \"src/bin/quickstart{i}.rs\"\n\
                 required-features = [\"tonic\"]\n"
            )
        })
        .collect();
    assert_eq!(tonic.len(), 1, "the README has one tonic quickstart");
    tonic.concat()
}

#[test]
fn the_readme_state_diagram_is_the_cores() {
    fn diagram(text: &str, after: &str, strip: &str) -> String {
        let start = text.find(after).expect(after);
        let body = &text[start..];
        let open = body.find("```text\n").unwrap() + "```text\n".len();
        let close = open + body[open..].find("```").unwrap();
        body[open..close]
            .lines()
            .map(|l| match strip {
                "" => l,
                _ => l.strip_prefix(strip).unwrap_or(l.trim_start_matches("//!")),
            })
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_owned()
    }
    let core: PathBuf = [env!("CARGO_MANIFEST_DIR"), "core", "src", "lib.rs"]
        .iter()
        .collect();
    let core = std::fs::read_to_string(core).unwrap();
    let readme = diagram(README, "## How a session moves", "");
    assert_eq!(readme, diagram(&core, "//! ## Phases", "//! "));
    assert!(readme.contains("ValidRefreshing"));
}
