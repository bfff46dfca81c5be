//! A tenant: placement and why, zones with their lifecycle, usage and cost as charts, tables,
//! streams and workers. Sections the viewer's role cannot read through `/v1` are left out.

use std::collections::{BTreeMap, HashMap};

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::views::{Page, Stream, Table, Tenant, Usage, Worker, ZonePolicy};
use crate::console::chart::{self, Bars, Series, Unit};
use crate::console::client::{Problem, seg, with_query};
use crate::console::format;
use crate::console::layout::{self, Frame, csrf, field_errors, invalid};
use crate::console::{Failure, Signed};

/// Zones in their order.
const ZONES: [&str; 3] = ["bronze", "silver", "gold"];

/// Classes a zone may tier to, as `PUT .../zones/{zone}` accepts them.
const TIER_CLASSES: [&str; 3] = ["STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"];

/// Tiering steps a form offers.
const FORM_STEPS: usize = 3;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The overview's query.
#[derive(Debug, Default, Deserialize)]
pub struct TenantQuery {
    tables_cursor: Option<String>,
    done: Option<String>,
}

/// A zone form sent back with what was wrong.
struct Rejected {
    zone: String,
    problem: Problem,
    form: HashMap<String, String>,
}

/// The overview.
pub async fn show(
    signed: Signed,
    Path(tenant): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Response, Failure> {
    render(&signed, &tenant, &query, None).await
}

async fn render(
    signed: &Signed,
    tenant_id: &str,
    query: &TenantQuery,
    rejected: Option<Rejected>,
) -> Result<Response, Failure> {
    let base = format!("/v1/tenants/{}", seg(tenant_id));
    let tables_path = with_query(
        &format!("{base}/tables"),
        &[("limit", Some("50")), ("cursor", query.tables_cursor.as_deref())],
    );
    let streams_path = format!("{base}/streams?limit=50");
    let workers_path = format!("{base}/workers?limit=20");
    let zones_path = format!("{base}/zones");
    let usage_path = format!("{base}/usage");
    let api = &signed.api;
    // Another tenant answers 404 for every section; each section may be refused to the role
    // (403, the tenant's own record included), which leaves that section out.
    let tenant: Option<Tenant> = optional(api.get(&base).await)?;
    let (zones, usage, tables, streams, workers) = tokio::join!(
        api.get::<BTreeMap<String, ZonePolicy>>(&zones_path),
        api.get::<Usage>(&usage_path),
        api.get::<Page<Table>>(&tables_path),
        api.get::<Page<Stream>>(&streams_path),
        api.get::<Page<Worker>>(&workers_path),
    );
    let zones = optional(zones)?;
    let usage = optional(usage)?;
    let tables = optional(tables)?;
    let streams = optional(streams)?;
    let workers = optional(workers)?;
    let page_base = format!("/console/tenants/{}", seg(tenant_id));
    let body = html! {
        (super::tenant_tabs(tenant_id, "Overview"))
        @if let Some(done) = query.done.as_deref() {
            (layout::notice(match done { "zone" => "Zone policy saved.", _ => "Done." }))
        }
        @if let Some(tenant) = &tenant {
        h2 id="placement" { "Placement" }
        dl.facts {
            dt { "Tenant" } dd.mono { (tenant.id) }
            dt { "Display name" } dd { (tenant.display_name) }
            dt { "Tier" } dd { (tenant.tier) }
            dt { "Isolation" } dd { (tenant.isolation) }
            dt { "Status" } dd { span.pill { (tenant.status) } @if let Some(r) = &tenant.status_reason { " " span.muted { (r) } } }
            dt { "Placement" } dd { (tenant.placement.kind) @if let Some(s) = tenant.placement.shard { " · shard " (s) } }
            dt { "Bucket" } dd.mono { (tenant.placement.bucket) "/" (tenant.placement.prefix) }
            dt { "Why" } dd { (tenant.placement.reason) }
            dt { "Created" } dd { (format::when(&tenant.created_at)) }
        }
        }
        @if let Some(usage) = &usage {
            h2 id="usage" { "Usage and cost" }
            (usage_section(usage))
        }
        @if let Some(zones) = &zones {
            h2 id="zones" { "Zones and lifecycle" }
            @for zone in ZONES {
                @if let Some(policy) = zones.get(zone) {
                    (zone_section(signed, tenant_id, zone, policy, rejected.as_ref().filter(|r| r.zone == zone)))
                }
            }
        }
        @if let Some(tables) = &tables {
            h2 id="tables" { "Tables" }
            (tables_section(tenant_id, &tables.items))
            (layout::pager(&with_query(&page_base, &[("tables_cursor", tables.next_cursor.as_deref())]), tables.next_cursor.is_some()))
        }
        @if let Some(streams) = &streams {
            h2 id="streams" { "Streams" }
            (streams_section(&streams.items))
        }
        @if let Some(workers) = &workers {
            h2 id="workers" { "Workers" }
            (workers_section(&workers.items))
        }
    };
    let frame = Frame {
        title: tenant
            .as_ref()
            .map_or_else(|| tenant_id.to_owned(), |t| t.display_name.clone()),
        crumbs: vec![layout::fleet_crumb(&signed.viewer), (tenant_id.to_owned(), None)],
        api: vec![
            base,
            zones_path,
            usage_path,
            tables_path,
            streams_path,
            workers_path,
        ],
        viewer: Some(&signed.viewer),
    };
    Ok(super::page(rejected.is_some(), frame, body))
}

/// A section's answer: shown, left out when the role may not read it, or the page's failure.
pub fn optional<T>(answer: Result<T, Problem>) -> Result<Option<T>, Failure> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(p) if p.status == 403 => Ok(None),
        Err(p) => Err(p.into()),
    }
}

/// What the stored bytes would cost a month all in STANDARD.
pub fn all_standard_cost(usage: &Usage) -> f64 {
    let bytes: u64 = usage.zones.values().map(|z| z.bytes).sum();
    bytes as f64 / GIB * usage.prices.standard_gb_month
}

fn usage_section(usage: &Usage) -> Markup {
    let classes: Vec<String> = {
        let mut seen: Vec<String> = Vec::new();
        for zone in usage.zones.values() {
            for c in &zone.classes {
                if !seen.contains(&c.storage_class) {
                    seen.push(c.storage_class.clone());
                }
            }
        }
        seen
    };
    let zones: Vec<&str> = ZONES
        .iter()
        .copied()
        .filter(|z| usage.zones.contains_key(*z))
        .collect();
    let by_zone = Bars {
        title: "Stored bytes by zone and storage class".into(),
        x_label: "Zone".into(),
        y_label: "Stored".into(),
        unit: Unit::Bytes,
        categories: zones.iter().map(|z| (*z).to_owned()).collect(),
        series: classes
            .iter()
            .map(|class| Series {
                label: class.clone(),
                values: zones
                    .iter()
                    .map(|z| {
                        usage.zones.get(*z).map_or(0.0, |u| {
                            u.classes
                                .iter()
                                .filter(|c| &c.storage_class == class)
                                .map(|c| c.bytes as f64)
                                .sum()
                        })
                    })
                    .collect(),
            })
            .collect(),
        label_every: 1,
    };
    let days = last_days(&usage.volume.daily, 30);
    let trend = Bars {
        title: "Data written per day, last 30 days".into(),
        x_label: "Day (UTC)".into(),
        y_label: "Written".into(),
        unit: Unit::Bytes,
        categories: days
            .iter()
            .map(|(d, _, _)| d.get(5..).unwrap_or(d).to_owned())
            .collect(),
        series: vec![
            Series {
                label: "ingested by the plane".into(),
                values: days.iter().map(|(_, i, _)| *i as f64).collect(),
            },
            Series {
                label: "written by other engines".into(),
                values: days.iter().map(|(_, _, o)| *o as f64).collect(),
            },
        ],
        label_every: 7,
    };
    let standard = all_standard_cost(usage);
    html! {
        dl.facts {
            dt { "Estimated cost" } dd { strong { (format::usd_month(usage.estimated_monthly_cost_usd)) } }
            dt { "All in STANDARD" } dd { (format::usd_month(standard)) }
            dt { "Lifecycle saves" } dd { (format::usd_month((standard - usage.estimated_monthly_cost_usd).max(0.0))) }
            dt { "Written, 30 days" } dd { (format::bytes(usage.volume.bytes_30d)) }
        }
        @if !usage.excludes.is_empty() {
            p.muted { "The estimate leaves out: " (usage.excludes.join("; ")) }
        }
        h3 { "Bytes by zone and storage class" }
        @if by_zone.series.is_empty() {
            p.empty { "Nothing stored yet. Push events to a table, and usage shows here after the next scan." }
        } @else {
            (chart::bars(&by_zone))
        }
        table {
            thead { tr { th { "Zone" } th { "Class" } th.num { "Bytes" } th.num { "Objects" } } }
            tbody {
                @for z in &zones {
                    @if let Some(u) = usage.zones.get(*z) {
                        @for c in &u.classes {
                            tr { td { (z) } td { (c.storage_class) } td.num { (format::bytes(c.bytes)) } td.num { (format::count(c.objects)) } }
                        }
                    }
                }
            }
        }
        h3 { "Written per day" }
        @if days.iter().all(|(_, i, o)| i + o == 0) {
            p.empty { "No writes counted in the last 30 days. The scheduler counts new data from each table's Delta log on its pass." }
        } @else {
            (chart::bars(&trend))
        }
    }
}

/// The last `n` days up to the newest day with writes, filled with zeros where nothing was
/// written, oldest first: `(day, ingested, outside)`.
pub fn last_days(daily: &[super::views::DailyVolume], n: usize) -> Vec<(String, u64, u64)> {
    let today = chrono::Utc::now().date_naive();
    (0..n)
        .rev()
        .map(|back| {
            let day = (today - chrono::Duration::days(back as i64))
                .format("%Y-%m-%d")
                .to_string();
            let (i, o) = daily
                .iter()
                .find(|d| d.day == day)
                .map_or((0, 0), |d| (d.ingest_bytes, d.outside_bytes));
            (day, i, o)
        })
        .collect()
}

fn zone_section(
    signed: &Signed,
    tenant: &str,
    zone: &str,
    policy: &ZonePolicy,
    rejected: Option<&Rejected>,
) -> Markup {
    let problem = rejected.map(|r| &r.problem);
    let value = |key: &str, current: String| -> String {
        rejected.and_then(|r| r.form.get(key).cloned()).unwrap_or(current)
    };
    let id = |field: &str| format!("{zone}-{field}");
    html! {
        h3 id={"zone-" (zone)} { (zone) " " span.muted { "(" (policy.source) ")" } }
        ol.timeline aria-label={"Lifecycle of " (zone)} {
            li { "day 0 · STANDARD" }
            @for t in &policy.transitions { li { "day " (t.after_days) " · " (t.storage_class) } }
            li { "day " (policy.retention_days) " · deleted" }
        }
        @if signed.viewer.role == "tenant-admin" || signed.viewer.is_platform_admin() {
        form.card method="post" action={"/console/tenants/" (seg(tenant)) "/zones/" (zone)} novalidate {
            (csrf(&signed.viewer.csrf))
            (layout::problem_notice(problem, &["retention_days", "transitions[0]", "transitions[1]", "transitions[2]"]))
            label for=(id("retention")) { "Retention (days, " (policy.min_retention_days) "–" (policy.max_retention_days) ")" }
            input id=(id("retention")) name="retention_days" inputmode="numeric"
                value=(value("retention_days", policy.retention_days.to_string()))
                aria-invalid=(invalid(problem, "retention_days")) aria-describedby={(id("retention")) "-error"};
            (field_errors(problem, "retention_days", &id("retention")))
            @for step in 0..FORM_STEPS {
                @let current = policy.transitions.get(step);
                @let field = format!("transitions[{step}]");
                div.row {
                    div {
                        label for=(id(&format!("after{step}"))) { "Step " (step + 1) ": after (days)" }
                        input id=(id(&format!("after{step}"))) name={"after_days_" (step)} inputmode="numeric"
                            value=(value(&format!("after_days_{step}"), current.map(|t| t.after_days.to_string()).unwrap_or_default()))
                            aria-invalid=(invalid(problem, &field));
                    }
                    div {
                        label for=(id(&format!("class{step}"))) { "move to" }
                        @let chosen = value(&format!("storage_class_{step}"), current.map(|t| t.storage_class.clone()).unwrap_or_default());
                        select id=(id(&format!("class{step}"))) name={"storage_class_" (step)} aria-invalid=(invalid(problem, &field)) {
                            option value="" selected[chosen.is_empty()] { "(no step)" }
                            @for class in TIER_CLASSES {
                                option value=(class) selected[chosen == class] { (class) }
                            }
                        }
                    }
                }
                (field_errors(problem, &field, &id(&format!("after{step}"))))
            }
            p { button type="submit" { "Save " (zone) " policy" } }
        }
        }
    }
}

/// The `PUT .../zones/{zone}` body a zone form stands for. A value that is not a number is
/// sent as the text it is, so `/v1` names the field in its problem, as it would for any
/// client.
pub fn zone_body(form: &HashMap<String, String>) -> serde_json::Value {
    let number_or_text = |raw: &str| -> serde_json::Value {
        let raw = raw.trim();
        raw.parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::from(raw))
    };
    let transitions: Vec<serde_json::Value> = (0..FORM_STEPS)
        .filter_map(|step| {
            let after = form
                .get(&format!("after_days_{step}"))
                .map(|s| s.trim())
                .unwrap_or("");
            let class = form
                .get(&format!("storage_class_{step}"))
                .map(|s| s.trim())
                .unwrap_or("");
            (!after.is_empty() || !class.is_empty())
                .then(|| serde_json::json!({ "after_days": number_or_text(after), "storage_class": class }))
        })
        .collect();
    serde_json::json!({
        "retention_days": number_or_text(form.get("retention_days").map(String::as_str).unwrap_or("")),
        "transitions": transitions,
    })
}

/// Saves a zone policy through `PUT /v1/tenants/{tenant}/zones/{zone}`.
pub async fn set_zone(
    signed: Signed,
    Path((tenant, zone)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    signed.check_csrf(&form)?;
    let path = format!("/v1/tenants/{}/zones/{}", seg(&tenant), seg(&zone));
    match signed
        .api
        .call::<serde_json::Value>(Method::PUT, &path, Some(zone_body(&form)))
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/tenants/{}?done=zone#zone-{}",
            seg(&tenant),
            seg(&zone)
        ))
        .into_response()),
        Err(problem) if problem.status == 422 || problem.status == 400 => {
            render(
                &signed,
                &tenant,
                &TenantQuery::default(),
                Some(Rejected { zone, problem, form }),
            )
            .await
        }
        Err(problem) => Err(problem.into()),
    }
}

fn tables_section(tenant: &str, tables: &[Table]) -> Markup {
    html! {
        @if tables.is_empty() {
            p.empty { "No tables you can see. Create one with " code { "POST /v1/tenants/" (tenant) "/tables" } "." }
        } @else {
            table {
                thead { tr { th { "Zone" } th { "Table" } th.num { "Version" } th { "Partitioned by" } th.num { "Target file size" } } }
                tbody {
                    @for t in tables {
                        tr {
                            td { (t.zone) }
                            td.mono { a href={"/console/tenants/" (seg(tenant)) "/tables/" (seg(&t.zone)) "/" (seg(&t.name))} { (t.name) } }
                            td.num { (t.version.map(|v| v.to_string()).unwrap_or_else(|| "—".into())) }
                            td.mono { (t.partition_by.join(", ")) }
                            td.num { (format::bytes(t.target_file_size_bytes)) }
                        }
                    }
                }
            }
        }
    }
}

fn streams_section(streams: &[Stream]) -> Markup {
    html! {
        @if streams.is_empty() {
            p.empty { "No streams. Push events over HTTP, or add a Kafka stream with " code { "POST …/streams" } "." }
        } @else {
            table {
                thead { tr { th { "Stream" } th { "Table" } th { "Source" } th { "Status" } th.num { "Ingest rate" } th.num { "Lag" } th { "Last error" } } }
                tbody {
                    @for s in streams {
                        tr {
                            td.mono { (s.name) }
                            td.mono { (table_name(&s.table)) }
                            td { (s.source.get("kind").and_then(|k| k.as_str()).unwrap_or("")) }
                            td { span.pill { (s.status) } }
                            @match &s.ingest_rate {
                                Some(rate) => td.num title=(format!("{} rows in the last {:.0} s", format::count(rate.rows), rate.window_seconds)) { (format::per_second(rate.rows_per_second)) },
                                None => td.num.muted title="the table's log could not be read" { "—" },
                            }
                            // Lag is per partition; the sum is how far the stream is behind.
                            td.num { (s.lag.as_ref().map(|l| format::count(l.values().map(|v| u64::try_from(*v).unwrap_or(0)).sum())).unwrap_or_else(|| "—".into())) }
                            td.muted { (s.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// `zone.name` of a `TableName` value.
fn table_name(value: &serde_json::Value) -> String {
    let part = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
    format!("{}.{}", part("zone"), part("name"))
}

fn workers_section(workers: &[Worker]) -> Markup {
    html! {
        @if workers.is_empty() {
            p.empty { "No workers: they start with streams, maintenance and migrations." }
        } @else {
            table {
                thead { tr { th { "Worker" } th { "Kind" } th { "State" } th.num { "Restarts" } th.num { "Failures" } th { "Last error" } th { "Updated" } } }
                tbody {
                    @for w in workers {
                        tr {
                            td.mono { (w.id) }
                            td { (w.kind) }
                            td { span.pill { (w.state) } }
                            td.num { (w.restarts) }
                            td.num { (w.failures) }
                            td.muted { (w.last_error.as_deref().unwrap_or("")) }
                            td { (format::when(&w.updated_at)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_form_becomes_the_api_body_with_bad_values_passed_on_as_text() {
        let form: HashMap<String, String> = [
            ("retention_days", "400"),
            ("after_days_0", "30"),
            ("storage_class_0", "STANDARD_IA"),
            ("after_days_1", "soon"),
            ("storage_class_1", "GLACIER_IR"),
            ("after_days_2", ""),
            ("storage_class_2", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            zone_body(&form),
            serde_json::json!({
                "retention_days": 400,
                "transitions": [
                    {"after_days": 30, "storage_class": "STANDARD_IA"},
                    {"after_days": "soon", "storage_class": "GLACIER_IR"},
                ]
            })
        );
    }
}
