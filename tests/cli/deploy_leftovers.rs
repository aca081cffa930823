//! A deploy killed while writing messages leaves a `.messages-XXXX` staging folder of partial
//! personal data in its output folder; the next deploy there (a resume or a new run) removes it.

use crate::shipped::{WF, out_dir, workspace, yaml_with_batches};

#[test]
fn leftover_staging_folders_are_removed_by_the_next_deploy_and_nothing_else() {
    let ws = workspace(&yaml_with_batches(500));
    ws.flow().args(["run", WF]).run();
    let dir = out_dir(&ws);

    // What a kill during the message writing or the folder swap leaves behind.
    for leftover in [".messages-k3J9aQ", ".messages-old-31337"] {
        std::fs::create_dir(dir.join(leftover)).expect("mkdir");
        std::fs::write(dir.join(leftover).join("C0001.eml"), "To: someone\n").expect("write");
    }
    // Not deploy's: kept.
    std::fs::create_dir(dir.join("notes")).expect("mkdir");
    std::fs::write(dir.join(".messages-readme"), "a file, not a staging folder").expect("write");

    let second = ws.flow().args(["run", WF]).run();
    assert_eq!(
        out_dir(&ws),
        dir,
        "the second run writes the same dated folder"
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n == "notes" || n == "messages")
        .collect();
    names.sort();
    assert_eq!(names, [".messages-readme", "messages", "notes"], "{second}");
    assert!(
        std::fs::read_dir(dir.join("messages"))
            .expect("messages")
            .count()
            > 0,
        "the new messages are in place"
    );
}
