//! Hardening of the import run (issue 8): claims of records that wrote nothing are released, and
//! an input that reads differently on the two passes fails loudly.

mod common;

use authport_engine::StateStore;
use authport_sandbox::SandboxConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_wrote_nothing_does_not_block_its_corrected_successor() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let state = StateStore::open(&dir.path().join("state.db")).unwrap();
    let importer = importer("apideck", &sandbox, &state);

    // The target refuses the first record (plan limit reached): nothing is written for it.
    sandbox.apideck.set_import_limit(Some(0));
    let first = write_lines(&dir.path().join("input-1.jsonl"), &[record(0, 1, 1)]);
    let report = dir.path().join("report-1.jsonl");
    let summary = run(&importer, &state, &options("apideck", &first, &report)).await;
    assert_eq!(counts(&summary), vec![("failed", 1)], "{}", summary.human());
    assert_eq!(sandbox.apideck.connection_count(), 0);

    // The operator fixes it under a new id: same consumer and connector, so the same target
    // connection. It must be imported, not refused as a conflict with the failed record.
    sandbox.apideck.set_import_limit(None);
    let mut corrected = record(0, 1, 2);
    corrected["id"] = serde_json::json!("rec-000000-fixed");
    let second = write_lines(&dir.path().join("input-2.jsonl"), &[corrected]);
    let report = dir.path().join("report-2.jsonl");
    let summary = run(&importer, &state, &options("apideck", &second, &report)).await;
    assert_eq!(
        counts(&summary),
        vec![("imported", 1)],
        "{}",
        summary.human()
    );
    assert_eq!(sandbox.apideck.connection_count(), 1);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_reads_differently_twice_fails_loudly() {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(SandboxConfig::default()).await;
    let fifo = dir.path().join("input.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A pipe hands each reader what the writer writes while it reads: three records the first
    // time a reader is there, two each time after. However the opens interleave, the first
    // pass reads an odd number of records and the second an even one.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (fifo, done) = (fifo.clone(), done.clone());
        std::thread::spawn(move || {
            let mut batch = 3;
            while !done.load(Ordering::SeqCst) {
                // Non-blocking: fails (ENXIO) until a reader has the pipe open.
                let opened = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo);
                let Ok(mut pipe) = opened else {
                    std::thread::yield_now();
                    continue;
                };
                for index in 0..batch {
                    let _ = writeln!(pipe, "{}", record(index, 3, 1));
                }
                batch = 2;
            }
        })
    };
    let state = StateStore::temporary().unwrap();
    let importer = importer("tray", &sandbox, &state);
    let report = dir.path().join("report.jsonl");
    let outcome = authport_engine::import(
        importer,
        &state,
        &options("tray", &fifo, &report),
        std::future::pending(),
    )
    .await;
    done.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(
        error.contains("the input changed while it was read: the first pass saw"),
        "{error}"
    );
}
