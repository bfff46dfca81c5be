//! Commits made durable on local storage before they are acknowledged. The object store
//! writes a table's files and renames its log entry into place but never flushes them, so a
//! power loss (or a kernel crash) after an acknowledgement could take back a commit the client
//! was told about. [`sync_commit`] flushes the commit's data files, its log entry and every
//! directory that names them. On an object store (S3) a write is durable once answered, so
//! nothing is done there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::DeltaError;

/// Flushes version `version` of the table at `root` to disk, when `root` is a local
/// (`file://`) table; a no-op for any other scheme. Blocks a blocking-pool thread, not the
/// caller's.
pub async fn sync_commit(root: &str, version: i64) -> Result<(), DeltaError> {
    let Ok(url) = url::Url::parse(root) else {
        return Err(DeltaError::Location(root.to_owned()));
    };
    if url.scheme() != "file" {
        return Ok(());
    }
    let dir = url
        .to_file_path()
        .map_err(|()| DeltaError::Location(root.to_owned()))?;
    tokio::task::spawn_blocking(move || sync_files(&dir, version))
        .await
        .map_err(|e| DeltaError::Io {
            operation: "sync commit",
            path: root.to_owned(),
            source: std::io::Error::other(e),
        })?
}

fn sync_files(table: &Path, version: i64) -> Result<(), DeltaError> {
    let log = table.join("_delta_log");
    let entry = log.join(format!("{version:020}.json"));
    let text = std::fs::read_to_string(&entry).map_err(io("read", &entry))?;
    let mut dirs = BTreeSet::from([table.to_path_buf(), log.clone()]);
    for file in added_files(table, &text) {
        sync(&file)?;
        // Partition directories the commit may have created, up to the table's own.
        let mut parent = file.parent();
        while let Some(dir) = parent.filter(|d| d.starts_with(table) && *d != table) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    sync(&entry)?;
    for dir in &dirs {
        sync(dir)?;
    }
    Ok(())
}

/// The local paths of the files a commit adds: relative paths (percent-encoded, as Delta
/// writes them) resolved against the table, and absolute `file://` URLs as they are.
fn added_files(table: &Path, commit: &str) -> Vec<PathBuf> {
    let Ok(base) = url::Url::from_directory_path(table) else {
        return Vec::new();
    };
    commit
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|action| action["add"]["path"].as_str().map(str::to_owned))
        .filter_map(|path| {
            url::Url::parse(&path)
                .or_else(|_| base.join(&path))
                .ok()
                .filter(|u| u.scheme() == "file")
                .and_then(|u| u.to_file_path().ok())
        })
        .collect()
}

fn sync(path: &Path) -> Result<(), DeltaError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync", path))
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeltaError + use<> {
    let path = path.display().to_string();
    move |source| DeltaError::Io {
        operation,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_paths_resolve_against_the_table_and_are_decoded() {
        let table = Path::new("/lake/b/bronze/t/events");
        let commit = concat!(
            r#"{"commitInfo":{"operation":"WRITE"}}"#,
            "\n",
            r#"{"add":{"path":"day=2026-12-05/part-0.parquet","size":1}}"#,
            "\n",
            r#"{"add":{"path":"city=S%C3%A3o%20Paulo/part-1.parquet","size":1}}"#,
            "\n",
            r#"{"remove":{"path":"part-old.parquet"}}"#,
            "\n",
            r#"{"add":{"path":"file:///elsewhere/part-2.parquet","size":1}}"#,
            "\n",
            r#"{"add":{"path":"s3://bucket/part-3.parquet","size":1}}"#,
        );
        assert_eq!(
            added_files(table, commit),
            vec![
                table.join("day=2026-12-05/part-0.parquet"),
                table.join("city=São Paulo/part-1.parquet"),
                PathBuf::from("/elsewhere/part-2.parquet"),
            ]
        );
    }

    #[tokio::test]
    async fn a_commit_and_its_files_are_flushed_and_other_schemes_are_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let table = dir.path().join("t");
        std::fs::create_dir_all(table.join("_delta_log")).expect("log");
        std::fs::create_dir_all(table.join("day=1")).expect("partition");
        std::fs::write(table.join("day=1/a.parquet"), b"PAR1").expect("data");
        std::fs::write(
            table.join("_delta_log/00000000000000000003.json"),
            r#"{"add":{"path":"day=1/a.parquet","size":4}}"#,
        )
        .expect("commit");
        let root = url::Url::from_directory_path(&table).expect("url").to_string();
        sync_commit(&root, 3).await.expect("synced");
        // A commit whose file is missing is an error, not a silent success.
        std::fs::remove_file(table.join("day=1/a.parquet")).expect("remove");
        assert!(sync_commit(&root, 3).await.is_err());
        assert!(sync_commit(&root, 4).await.is_err(), "no such version");
        sync_commit("s3://bucket/t/", 3)
            .await
            .expect("nothing to do on S3");
    }
}
