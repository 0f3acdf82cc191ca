//! Errors a person can act on: they name the file, directory or URL involved, read as sentences (no Rust Debug
//! text), and a crashed write leaves nothing behind for long.

use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::adapters::http::{ApiError, Service};
use licensewatch_core::adapters::sqlite::SqliteStore;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::archive::AuditArchive;
use licensewatch_core::ports::store::StoreError;

#[test]
fn a_database_that_cannot_be_opened_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    // A directory where the database file should be: SQLite cannot open it (even as root).
    let path = dir.path().join("state.db");
    std::fs::create_dir(&path).expect("dir");
    let err = SqliteStore::open(&path).expect_err("not a database");
    let text = CoreError::from(err).to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(text.matches("state store").count(), 1, "said once: {text}");
}

#[tokio::test]
async fn archive_errors_name_the_path_and_partial_files_are_swept() {
    let dir = tempfile::tempdir().expect("tmp");
    // The archive root is a file: nothing can be written under it.
    let root = dir.path().join("archive");
    std::fs::write(&root, b"not a directory").expect("file");
    let err = FileArchive::new(&root)
        .put_new("directory_audit/x/2026/11/21/a.ndjson.gz", b"x".to_vec())
        .await
        .expect_err("cannot write");
    let text = CoreError::from(err).to_string();
    assert!(text.contains(&root.display().to_string()), "{text}");
    assert!(text.starts_with("audit archive:"), "{text}");

    // A crash mid-write leaves a temporary file; the next run's clean-up removes old ones and keeps young ones.
    let archive_dir = dir.path().join("ok");
    let day = archive_dir.join("directory_audit/x/2026/11/21");
    std::fs::create_dir_all(&day).expect("dirs");
    std::fs::write(day.join("a.ndjson.tmp-0f0f"), b"partial").expect("tmp");
    std::fs::write(day.join("b.ndjson.gz"), b"object").expect("object");
    let archive = FileArchive::new(&archive_dir);
    assert_eq!(
        archive.clean_up().await.expect("sweep"),
        0,
        "a young file may be a write in progress"
    );
    assert_eq!(
        archive
            .sweep_temporary(std::time::Duration::ZERO)
            .expect("sweep"),
        1
    );
    assert!(!day.join("a.ndjson.tmp-0f0f").exists());
    assert!(day.join("b.ndjson.gz").exists(), "objects are never swept");
}

#[test]
fn api_errors_read_as_sentences() {
    let with_id = ApiError::Unavailable {
        service: Service::Graph,
        status: 503,
        code: "serviceNotAvailable".into(),
        message: "Service unavailable".into(),
        request_id: Some("4f1b7c1e-0000-4000-8000-000000000001".into()),
    };
    let without = ApiError::Rejected {
        service: Service::Graph,
        status: 400,
        code: "Request_BadRequest".into(),
        message: "Invalid filter".into(),
        request_id: None,
    };
    let throttled = ApiError::Throttled {
        service: Service::Management,
        status: 429,
        code: "AF429".into(),
        retry_after: Some(std::time::Duration::from_secs(30)),
        request_id: None,
    };
    for e in [&with_id, &without, &throttled] {
        let text = e.to_string();
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    }
    assert!(
        with_id
            .to_string()
            .ends_with("; request id 4f1b7c1e-0000-4000-8000-000000000001")
    );
    assert!(throttled.to_string().contains("it asked to wait 30 s"));
    let store = CoreError::from(StoreError::Database("disk I/O error".into())).to_string();
    assert_eq!(store, "state store: disk I/O error");
}
