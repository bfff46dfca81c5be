//! Appends through `delta::append` on real Delta tables (local storage): rows encoded ahead
//! land once and read back through DataFusion, and what only the planned write enforces (a
//! CHECK constraint, here) is enforced whether it was there when the rows were staged or was
//! added between staging and the commit.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{DataType as DeltaType, PrimitiveType, StructField};
use futures_util::TryStreamExt;
use lake_manager::delta::append::{Staged, append};
use lake_manager::delta::{DeltaSettings, tables};

fn batch(ids: &[i64], region: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("region", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(vec![region; ids.len()])),
        ],
    )
    .expect("batch")
}

/// A table of `id` and `region`, partitioned by region, in a fresh directory.
async fn table(dir: &tempfile::TempDir) -> (String, DeltaTable) {
    let root = format!("file://{}", dir.path().display());
    let created = deltalake::DeltaTableBuilder::from_url(url::Url::parse(&root).expect("url"))
        .expect("builder")
        .build()
        .expect("table")
        .create()
        .with_columns([
            StructField::new("id", DeltaType::Primitive(PrimitiveType::Long), true),
            StructField::new("region", DeltaType::Primitive(PrimitiveType::String), true),
        ])
        .with_partition_columns(["region"])
        .await
        .expect("create");
    (root, created)
}

/// The table with a CHECK constraint that ids are positive.
async fn positive_ids(table: DeltaTable) -> DeltaTable {
    table
        .add_constraint()
        .with_constraint("positive", "id > 0")
        .await
        .expect("constraint")
}

/// Every row of the table, as (id, region) sorted, read through DataFusion's scan.
async fn rows(root: &str) -> Vec<(i64, String)> {
    let table = tables::open(&DeltaSettings::local(), root).await.expect("open");
    let (_, stream) = table.scan_table().await.expect("scan");
    let batches: Vec<RecordBatch> = stream.try_collect().await.expect("read");
    let mut rows = Vec::new();
    for b in &batches {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .expect("id column");
        let regions =
            deltalake::arrow::compute::cast(b.column_by_name("region").expect("region"), &DataType::Utf8)
                .expect("region as utf8");
        let regions = regions.as_any().downcast_ref::<StringArray>().expect("strings");
        for i in 0..b.num_rows() {
            rows.push((ids.value(i), regions.value(i).to_owned()));
        }
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn rows_encoded_ahead_land_once_in_their_partitions() {
    let dir = tempfile::tempdir().expect("dir");
    let (root, table) = table(&dir).await;
    let mut staged = Staged::new(Some(&table));
    staged.push(batch(&[1, 2], "eu")).await;
    staged.push(batch(&[3], "us")).await;
    staged.push(batch(&[4, 5, 6], "eu")).await;
    let committed = staged
        .commit(table, CommitProperties::default())
        .await
        .expect("commit");
    assert_eq!(committed.version(), Some(1));
    let expected: Vec<(i64, String)> = [(1, "eu"), (2, "eu"), (3, "us"), (4, "eu"), (5, "eu"), (6, "eu")]
        .into_iter()
        .map(|(id, region)| (id, region.to_owned()))
        .collect();
    assert_eq!(rows(&root).await, expected);
    // One file per partition, each under its partition's directory, with its row count.
    let files: Vec<(String, i64)> = committed
        .snapshot()
        .expect("snapshot")
        .log_data()
        .iter()
        .map(|f| (f.path().to_string(), f.num_records().map_or(-1, |n| n as i64)))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let eu = files
        .iter()
        .find(|(p, _)| p.starts_with("region=eu/"))
        .expect("an eu file");
    let us = files
        .iter()
        .find(|(p, _)| p.starts_with("region=us/"))
        .expect("a us file");
    assert_eq!((eu.1, us.1), (5, 1));
}

#[tokio::test]
async fn a_check_constraint_is_enforced_on_appends() {
    let dir = tempfile::tempdir().expect("dir");
    let (root, table) = table(&dir).await;
    let table = positive_ids(table).await;
    let version = table.version();
    let refused = append(
        table.clone(),
        vec![batch(&[5, -1], "eu")],
        CommitProperties::default(),
    )
    .await;
    assert!(refused.is_err(), "a row breaking the constraint was committed");
    let mut staged = Staged::new(Some(&table));
    staged.push(batch(&[7, -2], "eu")).await;
    assert!(
        staged
            .commit(table.clone(), CommitProperties::default())
            .await
            .is_err(),
        "a staged row breaking the constraint was committed"
    );
    let reopened = tables::open(&DeltaSettings::local(), &root).await.expect("open");
    assert_eq!(reopened.version(), version, "nothing was committed");
    let accepted = append(table, vec![batch(&[8], "eu")], CommitProperties::default())
        .await
        .expect("a valid row");
    assert!(accepted.version() > version);
    assert_eq!(rows(&root).await, vec![(8, "eu".to_owned())]);
}

#[tokio::test]
async fn a_constraint_added_after_staging_still_refuses_the_staged_rows() {
    let dir = tempfile::tempdir().expect("dir");
    let (root, table) = table(&dir).await;
    // Staged (and encoded) while the table had no constraint.
    let mut staged = Staged::new(Some(&table));
    staged.push(batch(&[1, -3], "eu")).await;
    let constrained = positive_ids(table).await;
    let version = constrained.version();
    let result = staged.commit(constrained, CommitProperties::default()).await;
    assert!(result.is_err(), "rows encoded before the constraint bypassed it");
    let reopened = tables::open(&DeltaSettings::local(), &root).await.expect("open");
    assert_eq!(reopened.version(), version);
    assert!(rows(&root).await.is_empty());
}
