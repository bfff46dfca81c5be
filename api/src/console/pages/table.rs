//! A table: schema and partitioning, history, file sizes against the target, maintenance.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::views::{Commit, Page, Run, RunAccepted, Table};
use crate::console::chart::{self, Bars, Series, Unit};
use crate::console::client::{Problem, seg, with_query};
use crate::console::format;
use crate::console::layout::{self, Frame, csrf};
use crate::console::{Failure, Signed};

/// Operations a run may ask for, in the order `/v1` runs them.
const OPERATIONS: [&str; 5] = ["retention", "compact", "zorder", "vacuum", "checkpoint"];

/// The page's query.
#[derive(Debug, Default, Deserialize)]
pub struct TableQuery {
    history_cursor: Option<String>,
    runs_cursor: Option<String>,
    run: Option<String>,
}

/// The table page.
pub async fn show(
    signed: Signed,
    Path((tenant, zone, name)): Path<(String, String, String)>,
    Query(query): Query<TableQuery>,
) -> Result<Response, Failure> {
    render(&signed, &tenant, &zone, &name, &query, None).await
}

async fn render(
    signed: &Signed,
    tenant: &str,
    zone: &str,
    name: &str,
    query: &TableQuery,
    rejected: Option<Problem>,
) -> Result<Response, Failure> {
    let base = format!("/v1/tenants/{}/tables/{}/{}", seg(tenant), seg(zone), seg(name));
    let history_path = with_query(
        &format!("{base}/history"),
        &[("limit", Some("20")), ("cursor", query.history_cursor.as_deref())],
    );
    let runs_path = with_query(
        &format!("{base}/maintenance"),
        &[("limit", Some("10")), ("cursor", query.runs_cursor.as_deref())],
    );
    let run_path = query
        .run
        .as_deref()
        .map(|id| format!("{base}/maintenance/{}", seg(id)));
    let table: Table = signed.api.get(&base).await?;
    let history: Page<Commit> = signed.api.get(&history_path).await?;
    let runs: Page<Run> = signed.api.get(&runs_path).await?;
    let run: Option<Run> = match &run_path {
        Some(path) => super::tenant::optional(signed.api.get::<Run>(path).await)?,
        None => None,
    };
    let page_base = format!(
        "/console/tenants/{}/tables/{}/{}",
        seg(tenant),
        seg(zone),
        seg(name)
    );
    let body = html! {
        dl.facts {
            dt { "Location" } dd.mono { (table.location) }
            @if let Some(d) = &table.description { dt { "Description" } dd { (d) } }
            dt { "Version" } dd { (table.version.map(|v| v.to_string()).unwrap_or_else(|| "—".into())) }
            dt { "Partitioned by" } dd.mono { @if table.partition_by.is_empty() { span.muted { "not partitioned" } } @else { (table.partition_by.join(", ")) } }
            dt { "Z-ordered by" } dd.mono { (table.z_order_by.join(", ")) }
            dt { "Rows" } dd { (table.num_rows.map(format::count).unwrap_or_else(|| "—".into())) }
            dt { "Size" } dd { (table.size_bytes.map(format::bytes).unwrap_or_else(|| "—".into())) " in " (table.num_files.map(format::count).unwrap_or_else(|| "—".into())) " files" }
        }
        h2 id="schema" { "Schema" }
        table {
            thead { tr { th { "Column" } th { "Type" } th { "Nullable" } } }
            tbody {
                @for c in &table.columns {
                    tr { td.mono { (c.name) } td.mono { (c.kind) } td { @if c.nullable { "yes" } @else { "no" } } }
                }
            }
        }
        h2 id="files" { "File sizes" }
        (files_section(&table))
        h2 id="maintenance" { "Maintenance" }
        @if let Some(run) = &run { h3 { "The run you queued" } (run_facts(run)) }
        h3 { "Runs" }
        @if runs.items.is_empty() {
            p.empty { "No maintenance has run on this table yet. The scheduler queues what is due; queue a run below." }
        } @else {
            table {
                thead { tr { th { "Requested" } th { "By" } th { "Operations" } th { "Status" } th.num { "Took" } th { "What it did" } } }
                tbody {
                    @for r in &runs.items {
                        tr {
                            td { (format::when(&r.created_at)) }
                            td.mono { (r.requested_by) }
                            td { (r.operations.join(", ")) }
                            td { span.pill { (r.status) } @if let Some(e) = &r.error { " " span.bad { (e) } } }
                            td.num { (r.duration_ms.map(|ms| format!("{} ms", format::count(ms))).unwrap_or_else(|| "—".into())) }
                            td.mono.muted { (r.metrics.as_ref().map(metrics_summary).unwrap_or_default()) }
                        }
                    }
                }
            }
            (layout::pager(&format!("{}#maintenance", with_query(&page_base, &[("runs_cursor", runs.next_cursor.as_deref())])), runs.next_cursor.is_some()))
        }
        form.card method="post" action={(page_base) "/maintenance"} {
            (csrf(&signed.viewer.csrf))
            (layout::problem_notice(rejected.as_ref(), &[]))
            fieldset {
                legend { "Operations" }
                @for op in OPERATIONS {
                    label.check { input type="checkbox" name={"op_" (op)} value="yes" checked[op == "compact"]; " " (op) }
                }
            }
            p { button type="submit" { "Queue maintenance" } }
        }
        h2 id="history" { "History" }
        table {
            thead { tr { th.num { "Version" } th { "When" } th { "Operation" } th { "Metrics" } } }
            tbody {
                @for c in &history.items {
                    tr {
                        td.num { (c.version) }
                        td { (c.timestamp.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or_default()) }
                        td { (c.operation.as_deref().unwrap_or("")) }
                        td.mono.muted { (metrics_summary(&c.operation_metrics)) }
                    }
                }
            }
        }
        (layout::pager(&with_query(&page_base, &[("history_cursor", history.next_cursor.as_deref())]), history.next_cursor.is_some()))
    };
    let frame = Frame {
        title: format!("{zone}.{name}"),
        crumbs: vec![
            layout::fleet_crumb(&signed.viewer),
            (
                tenant.to_owned(),
                Some(format!("/console/tenants/{}", seg(tenant))),
            ),
            (
                zone.to_owned(),
                Some(format!("/console/tenants/{}#zone-{}", seg(tenant), seg(zone))),
            ),
            (name.to_owned(), None),
        ],
        api: [Some(base.clone()), Some(runs_path), Some(history_path), run_path]
            .into_iter()
            .flatten()
            .collect(),
        viewer: Some(&signed.viewer),
    };
    Ok(super::page(rejected.is_some(), frame, body))
}

fn files_section(table: &Table) -> Markup {
    let threshold = table.small_file_threshold_bytes.unwrap_or(0);
    html! {
        dl.facts {
            dt { "Target file size" } dd { (format::bytes(table.target_file_size_bytes)) }
            dt { "Small files" } dd {
                (table.small_files.map(format::count).unwrap_or_else(|| "—".into()))
                " below " (format::bytes(threshold))
                @if table.small_files.unwrap_or(0) > 0 { " · " span.bad { "compaction would merge them" } }
            }
        }
        @if table.file_sizes.iter().any(|b| b.files > 0) {
            (chart::bars(&size_chart(&table.file_sizes, threshold)))
        }
    }
}

/// Files by size, small ones (below the compaction threshold) apart from the rest.
fn size_chart(buckets: &[super::views::SizeBucket], threshold: u64) -> Bars {
    let small = |b: &super::views::SizeBucket| b.up_to_bytes.is_some_and(|up| up <= threshold);
    Bars {
        title: "Live data files by size".into(),
        x_label: "File size, up to".into(),
        y_label: "Files".into(),
        unit: Unit::Count,
        categories: buckets
            .iter()
            .map(|b| b.up_to_bytes.map_or_else(|| "larger".to_owned(), format::bytes))
            .collect(),
        series: vec![
            Series {
                label: format!("small (below {})", format::bytes(threshold)),
                values: buckets
                    .iter()
                    .map(|b| if small(b) { b.files as f64 } else { 0.0 })
                    .collect(),
            },
            Series {
                label: "at or near the target".into(),
                values: buckets
                    .iter()
                    .map(|b| if small(b) { 0.0 } else { b.files as f64 })
                    .collect(),
            },
        ],
        label_every: 1,
    }
}

fn run_facts(run: &Run) -> Markup {
    html! {
        dl.facts {
            dt { "Run" } dd.mono { (run.run_id) }
            dt { "Status" } dd { span.pill { (run.status) } @if let Some(e) = &run.error { " " span.bad { (e) } } }
            dt { "Operations" } dd { (run.operations.join(", ")) }
            dt { "Requested" } dd { (format::when(&run.created_at)) " by " (run.requested_by) }
            @if let Some(ms) = run.duration_ms { dt { "Took" } dd { (ms) " ms" } }
        }
    }
}

/// A commit's or a run's metrics in one line, as `name=value` pairs; zero, null and empty
/// values are left out (a compaction's `rows_deleted=0` says nothing).
fn metrics_summary(metrics: &serde_json::Map<String, serde_json::Value>) -> String {
    use serde_json::Value;
    let said = |v: &Value| match v {
        Value::Null => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Array(a) => !a.is_empty(),
        _ => true,
    };
    metrics
        .iter()
        .filter(|(_, v)| said(v))
        .take(6)
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Queues maintenance through `POST .../maintenance` and shows the run.
pub async fn maintain(
    signed: Signed,
    Path((tenant, zone, name)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let operations: Vec<&str> = OPERATIONS
        .into_iter()
        .filter(|op| form.get(&format!("op_{op}")).is_some_and(|v| v == "yes"))
        .collect();
    let path = format!(
        "/v1/tenants/{}/tables/{}/{}/maintenance",
        seg(&tenant),
        seg(&zone),
        seg(&name)
    );
    match signed
        .api
        .call::<RunAccepted>(
            Method::POST,
            &path,
            Some(serde_json::json!({ "operations": operations })),
        )
        .await
    {
        Ok(accepted) => Ok(Redirect::to(&format!(
            "/console/tenants/{}/tables/{}/{}?run={}#maintenance",
            seg(&tenant),
            seg(&zone),
            seg(&name),
            seg(&accepted.run_id)
        ))
        .into_response()),
        Err(p) if matches!(p.status, 400 | 409 | 422) => {
            render(&signed, &tenant, &zone, &name, &TableQuery::default(), Some(p)).await
        }
        Err(p) => Err(p.into()),
    }
}
