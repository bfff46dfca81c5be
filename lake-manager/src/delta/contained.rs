//! Containment of a table's files. A Delta log can name any file: a writer holding
//! credentials can commit an `add` whose path lies in another table, another tenant's prefix or
//! another bucket. Whatever the plane does with the plane's own, wider, credentials (sign a
//! sharing URL, read files to compact them) must stay inside the table's root.

use deltalake::DeltaTable;

use super::DeltaError;

/// A file of the Delta log as a path inside the table, or `None` when it lies outside. Files
/// are normally relative; an absolute one must start with the table's root and, like a relative
/// one, must not climb out of it (`s3://bucket/t/../other/x` starts with `s3://bucket/t/`). A
/// writer with credentials can commit any path: one outside the table must never become a URL
/// signed with the plane's own, wider, credentials.
pub fn inside_table(path: &str, root_url: &str) -> Option<String> {
    let inner = if path.contains("://") {
        path.strip_prefix(root_url)?
    } else {
        path
    };
    tenancy::share::is_contained_path(inner).then(|| inner.to_owned())
}

/// Refuses a table whose current snapshot names a data file outside its root, before the plane
/// reads any of its files (compaction, Z-order, retention rewrite).
pub fn refuse_outside_files(table: &DeltaTable) -> Result<(), DeltaError> {
    let root_url = table.table_url().to_string();
    let root_url = if root_url.ends_with('/') {
        root_url
    } else {
        format!("{root_url}/")
    };
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::delta("read the file list", &root_url, e))?;
    for file in state.log_data().iter() {
        let path = file.path().into_owned();
        if inside_table(&path, &root_url).is_none() {
            return Err(DeltaError::Refused(format!(
                "the table references a file outside its root ({path}); the plane reads no file of it"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::inside_table;

    #[test]
    fn only_files_inside_the_table_are_shared() {
        let root = "s3://lake-shared-0000/gold/acme/orders/";
        for (path, shared) in [
            ("part-0.parquet", Some("part-0.parquet")),
            ("country=fr/part-1.parquet", Some("country=fr/part-1.parquet")),
            (
                "s3://lake-shared-0000/gold/acme/orders/part-2.parquet",
                Some("part-2.parquet"),
            ),
            ("../bravo/part-0.parquet", None),
            ("/etc/passwd", None),
            (
                "s3://lake-shared-0000/gold/acme/orders/../../bravo/secret.parquet",
                None,
            ),
            (
                "s3://lake-shared-0000/gold/acme/orders/./x/../../../bravo/y.parquet",
                None,
            ),
            (
                "s3://lake-shared-0000/gold/acme/orders-archive/part-0.parquet",
                None,
            ),
            ("s3://other-bucket/gold/acme/orders/part-0.parquet", None),
            ("file:///etc/passwd", None),
        ] {
            assert_eq!(inside_table(path, root).as_deref(), shared, "{path}");
        }
    }
}
