//! Compaction throughput: a Delta table of many small files (default 1,000 of about 1 MB) on
//! local disk, compacted three ways on identical copies in the same run:
//! - Lakeplane's `compact` (the library call behind the maintenance API),
//! - the Python `deltalake` package's `optimize.compact()` (`LAKEPLANE_PYTHON`),
//! - a bare read-and-rewrite of the same Parquet files with `parquet`/`arrow` (one thread).
//!
//! Also times a full scan (Python `deltalake`, `to_pyarrow_table`) before and after.
//! Run: `LAKEPLANE_PYTHON=/var/tmp/lakeplane-venv/bin/python cargo bench -p lake-manager --bench compact`
//! (`BENCH_FILES`, `BENCH_ROWS_PER_FILE` resize it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use lake_manager::delta::maintain::{self, Plan};
use lake_manager::delta::{DeltaSettings, tables};
use tenancy::maintenance::{Operation, RunMetrics};
use tenancy::table::{RawColumn, TableRequest};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// Rows whose values vary enough that Parquet cannot shrink them to nothing.
fn batch(start: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + rows as i64).collect();
    let mix = |i: i64| {
        (i.wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            >> 17) as u64
    };
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("customer-{}", mix(*i) % 5000)),
            )),
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|i| (mix(*i) % 100_000) as f64 / 100.0),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.iter()
                    .map(|i| format!("{:016x}{:016x}", mix(*i), mix(*i + 7))),
            )),
        ],
    )
    .expect("batch")
}

fn dir_bytes(dir: &Path, ext: &str) -> (u64, usize) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == ext) {
            total.0 += entry.metadata().expect("meta").len();
            total.1 += 1;
        }
    }
    total
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

fn python(script: &str, args: &[&str]) -> String {
    let python = std::env::var("LAKEPLANE_PYTHON").expect("LAKEPLANE_PYTHON: the test venv's python");
    let script = format!("{script}\nimport sys as _s, os as _o\n_s.stdout.flush()\n_o._exit(0)\n");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

const SCAN: &str = r#"
import sys, time
from deltalake import DeltaTable
start = time.perf_counter()
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
print(time.perf_counter() - start, t.num_rows)
"#;

const PY_COMPACT: &str = r#"
import sys, time
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
start = time.perf_counter()
m = t.optimize.compact(target_size=128 * 1024 * 1024)
print(time.perf_counter() - start, m["numFilesRemoved"], m["numFilesAdded"])
"#;

fn scan(path: &Path) -> (f64, u64) {
    let out = python(SCAN, &[path.to_str().expect("utf8 path")]);
    let mut it = out.split_whitespace();
    (
        it.next().and_then(|v| v.parse().ok()).expect("seconds"),
        it.next().and_then(|v| v.parse().ok()).expect("rows"),
    )
}

/// Reads every Parquet file and rewrites the rows into 128 MB files: what compaction costs
/// without Delta.
fn bare_rewrite(from: &Path, to: &Path) -> usize {
    std::fs::create_dir_all(to).expect("out dir");
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut files = 0;
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(from)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    inputs.sort();
    for input in inputs {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&input).expect("open"))
            .expect("reader")
            .build()
            .expect("build");
        for batch in reader {
            let batch = batch.expect("batch");
            let w = writer.get_or_insert_with(|| {
                files += 1;
                let file =
                    std::fs::File::create(to.join(format!("part-{files:05}.parquet"))).expect("create");
                ArrowWriter::try_new(file, batch.schema(), Some(props.clone())).expect("writer")
            });
            w.write(&batch).expect("write");
            if w.bytes_written() + w.in_progress_size() >= 128 * 1024 * 1024 {
                writer.take().expect("open writer").close().expect("close");
            }
        }
    }
    if let Some(w) = writer {
        w.close().expect("close");
    }
    files
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let files = env("BENCH_FILES", 1000);
    let rows_per_file = env("BENCH_ROWS_PER_FILE", 16_000);
    let work = tempfile::tempdir().expect("work dir");
    let source = work.path().join("source");
    let root = format!("file://{}/", source.display());
    let spec = TableRequest {
        zone: "bronze".into(),
        name: "bench".into(),
        columns: ["id:long", "customer:string", "amount:double", "note:string"]
            .iter()
            .map(|c| {
                let (name, kind) = c.split_once(':').expect("name:type");
                RawColumn {
                    name: name.into(),
                    column_type: kind.into(),
                    nullable: None,
                }
            })
            .collect(),
        partition_by: vec![],
        event_time_column: None,
        z_order_by: vec![],
        description: None,
        target_file_size_bytes: None,
        subject_columns: vec![],
    }
    .validate()
    .expect("valid spec");
    let settings = DeltaSettings::local();
    tables::create(&settings, &root, &spec).await.expect("create");
    // Small files as a busy ingestion stream leaves them, written in one commit with a 1 MB
    // target so setting up does not dominate the run.
    let started = Instant::now();
    let batches: Vec<RecordBatch> = (0..files)
        .map(|i| batch((i * rows_per_file) as i64, rows_per_file))
        .collect();
    tables::open(&settings, &root)
        .await
        .expect("open")
        .write(batches)
        .with_target_file_size(std::num::NonZeroU64::new(1024 * 1024))
        .await
        .expect("write small files");
    let (bytes, count) = dir_bytes(&source, "parquet");
    let mb = bytes as f64 / 1e6;
    println!(
        "table: {count} files, {mb:.1} MB, {} rows (written in {:.1} s)",
        files * rows_per_file,
        started.elapsed().as_secs_f64()
    );
    let py_copy = work.path().join("python");
    let bare_copy = work.path().join("bare");
    copy_dir(&source, &py_copy);
    copy_dir(&source, &bare_copy);

    let (scan_before, rows_before) = scan(&source);

    let table = tables::open(&settings, &root).await.expect("open");
    let snapshot_before = tables::snapshot(&table, 16 * 1024 * 1024).expect("snapshot");
    let plan = Plan {
        spec: &spec,
        retention_days: u32::MAX,
        vacuum_retention: maintain::MIN_VACUUM_RETENTION,
        allow_short_vacuum: false,
        now: tenancy::now(),
    };
    let mut metrics = RunMetrics::default();
    let started = Instant::now();
    maintain::run(&settings, &root, &[Operation::Compact], &plan, &mut metrics)
        .await
        .expect("compact");
    let ours = started.elapsed().as_secs_f64();
    let (scan_after, rows_after) = scan(&source);
    assert_eq!(rows_before, rows_after, "compaction keeps every row");

    let out = python(PY_COMPACT, &[py_copy.to_str().expect("utf8")]);
    let mut it = out.split_whitespace();
    let py: f64 = it.next().and_then(|v| v.parse().ok()).expect("seconds");
    let py_removed: u64 = it.next().and_then(|v| v.parse().ok()).expect("removed");

    let started = Instant::now();
    let bare_files = bare_rewrite(&bare_copy, &work.path().join("bare-out"));
    let bare = started.elapsed().as_secs_f64();

    println!(
        "lakeplane compact: {:.2} s, {:.1} MB/s ({} files -> {}; {} small files before)",
        ours,
        mb / ours,
        metrics.files_removed,
        metrics.files_added,
        snapshot_before.small_files
    );
    println!(
        "python deltalake optimize.compact: {py:.2} s, {:.1} MB/s ({py_removed} files removed)",
        mb / py
    );
    println!(
        "bare parquet read+rewrite (1 thread): {bare:.2} s, {:.1} MB/s ({bare_files} files)",
        mb / bare
    );
    println!(
        "ratio lakeplane/python throughput: {:.2}; lakeplane/bare: {:.2}",
        py / ours,
        bare / ours
    );
    println!(
        "full scan (python to_pyarrow_table): before {scan_before:.2} s, after {scan_after:.2} s, {rows_after} rows"
    );
}
