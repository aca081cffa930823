//! The shipped default workflow in a temporary workspace, with its sample data beside it.

use std::path::{Path, PathBuf};

use crate::support::Workspace;

/// The workflow file inside these workspaces.
pub const WF: &str = "segmentation.yaml";

/// A file of this repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A text file of this repository.
pub fn read_repo(rel: &str) -> String {
    let path = repo_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `workflows/segmentation.yaml` exactly as shipped.
pub fn shipped_yaml() -> String {
    read_repo("workflows/segmentation.yaml")
}

/// `text` with `from` (which must occur exactly once) replaced by `to`.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "expected one {from:?}");
    text.replacen(from, to, 1)
}

/// `workflows/segmentation.yaml` with `batch_size`, no retries and a short timeout for the POS
/// push, so tests see every batch as it is sent.
pub fn yaml_with_batches(batch_size: usize) -> String {
    let path = repo_path("workflows/segmentation.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let from = "      pos_token_env: FLOW_POS_TOKEN\n";
    assert_eq!(
        text.matches(from).count(),
        1,
        "pos_token_env in the shipped workflow"
    );
    text.replacen(
        from,
        &format!(
            "{from}      batch_size: {batch_size}\n      pos_retries: 0\n      pos_timeout: 20s\n"
        ),
        1,
    )
}

/// A workspace with `yaml` as [`WF`] and a copy of `workflows/data/` under `data/`.
pub fn workspace(yaml: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write(WF, yaml);
    let src = repo_path("workflows/data");
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            let name = path.file_name().expect("file name").to_string_lossy();
            ws.write(
                &format!("data/{name}"),
                std::fs::read(&path).expect("read sample"),
            );
        }
    }
    ws
}

/// The one dated output folder under `out/` (the shipped `out_dir`).
pub fn out_dir(ws: &Workspace) -> PathBuf {
    let out = ws.path("out");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one dated folder in {}: {dirs:?}",
        out.display()
    );
    dirs.into_iter().next().expect("one")
}
