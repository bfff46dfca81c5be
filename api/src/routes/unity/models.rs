//! The Unity Catalog REST models this API answers with, and how tenants, zones and tables map
//! onto them (catalog = tenant, schema = zone, table = table). Field names and encodings are
//! Unity Catalog OSS's (`api/all.yaml`): times in epoch milliseconds, `type_json` a string.
//! Every field its clients decode without a default is always present (`created_at`,
//! `updated_at`, `properties`, `columns`, numeric `type_precision`/`type_scale`), and a list's
//! last page has no `next_page_token` at all (an empty one makes some clients loop).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lake_manager::delta::metadata::TableMetadata;
use serde::Serialize;
use tenancy::role::Zone;
use tenancy::store::TableRecord;
use tenancy::tenant::Tenant;
use utoipa::ToSchema;

/// A catalog: one tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogInfo {
    /// The tenant id.
    pub name: String,
    /// The tenant's display name.
    pub comment: Option<String>,
    /// `lakeplane.tier` and `lakeplane.status`.
    pub properties: BTreeMap<String, String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    /// The tenant id.
    pub id: String,
}

/// A schema: one zone of a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaInfo {
    /// `bronze`, `silver` or `gold`.
    pub name: String,
    /// The tenant id.
    pub catalog_name: String,
    /// `{catalog}.{schema}`.
    pub full_name: String,
    /// What the zone holds.
    pub comment: Option<String>,
    /// None.
    pub properties: BTreeMap<String, String>,
    /// The tenant's creation, epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    /// `{catalog}.{schema}`.
    pub schema_id: String,
}

/// A column, from the table's live Delta schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Spark's catalog string: `bigint`, `decimal(10,2)`, `array<string>`, `struct<a:int>`.
    pub type_text: String,
    /// The column as a Spark `StructField` JSON document, serialized to a string.
    pub type_json: String,
    /// `LONG`, `INT`, `STRING`, `DECIMAL`, `ARRAY`, `STRUCT`, `MAP`, `TIMESTAMP_NTZ`, ...
    pub type_name: &'static str,
    /// The decimal precision; 0 for other types.
    pub type_precision: i32,
    /// The decimal scale; 0 for other types.
    pub type_scale: i32,
    /// Position in the schema, from 0.
    pub position: i32,
    /// The column's comment (its `comment` metadata), if any.
    pub comment: Option<String>,
    /// Whether values may be null.
    pub nullable: bool,
    /// Position among the partition columns, from 0; absent for other columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_index: Option<i32>,
}

/// A table.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableInfo {
    /// The table's name.
    pub name: String,
    /// The tenant id.
    pub catalog_name: String,
    /// The zone.
    pub schema_name: String,
    /// `{catalog}.{schema}.{table}`.
    pub full_name: String,
    /// Always `EXTERNAL`: the plane owns the storage, engines reach it by its location.
    #[schema(example = "EXTERNAL")]
    pub table_type: &'static str,
    /// Always `DELTA`.
    #[schema(example = "DELTA")]
    pub data_source_format: &'static str,
    /// The columns of the table's current Delta schema (empty in lists with `omit_columns`).
    pub columns: Vec<ColumnInfo>,
    /// `file:///…` on local storage, `s3://bucket/prefix/` on S3.
    pub storage_location: String,
    /// The table's description.
    pub comment: Option<String>,
    /// The Delta table's configuration (`delta.*` and other writers' properties).
    pub properties: BTreeMap<String, String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// When its definition last changed, epoch milliseconds.
    pub updated_at: i64,
    /// The table's id: what `POST /temporary-table-credentials` takes.
    pub table_id: String,
}

/// A page of catalogs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListCatalogsResponse {
    /// The catalogs.
    pub catalogs: Vec<CatalogInfo>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A page of schemas.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListSchemasResponse {
    /// The schemas.
    pub schemas: Vec<SchemaInfo>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A page of tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListTablesResponse {
    /// The tables.
    pub tables: Vec<TableInfo>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Temporary AWS credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct AwsTempCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: String,
}

/// Credentials for one table.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemporaryCredentials {
    /// STS credentials narrowed to the table (S3 with IAM); absent on local storage, which
    /// needs none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_temp_credentials: Option<AwsTempCredentials>,
    /// When they stop working, epoch milliseconds.
    pub expiration_time: i64,
    /// The table's storage location they are for.
    pub url: String,
}

/// The Unity Catalog error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct UcError {
    /// `INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, `NOT_FOUND`,
    /// `FAILED_PRECONDITION`, `RESOURCE_EXHAUSTED`, `UNIMPLEMENTED`, `UNAVAILABLE` or
    /// `INTERNAL`.
    pub error_code: String,
    /// What went wrong (the field at fault, for `INVALID_ARGUMENT`).
    pub message: String,
    /// One `google.rpc.ErrorInfo` whose `reason` is the code.
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<serde_json::Value>,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// What each zone holds, as its schema's comment.
fn zone_comment(zone: Zone) -> &'static str {
    match zone {
        Zone::Bronze => "raw data, as ingested",
        Zone::Silver => "cleaned data",
        Zone::Gold => "business-ready data",
    }
}

impl CatalogInfo {
    /// The catalog of a tenant.
    pub fn of(tenant: &Tenant) -> Self {
        Self {
            name: tenant.id.to_string(),
            comment: Some(tenant.display_name.clone()),
            properties: BTreeMap::from([
                ("lakeplane.tier".to_owned(), tenant.tier.as_str().to_owned()),
                ("lakeplane.status".to_owned(), tenant.status.as_str().to_owned()),
            ]),
            created_at: millis(tenant.created_at),
            updated_at: millis(tenant.updated_at),
            id: tenant.id.to_string(),
        }
    }
}

impl SchemaInfo {
    /// The schema of a tenant's zone.
    pub fn of(tenant: &Tenant, zone: Zone) -> Self {
        let full_name = format!("{}.{}", tenant.id, zone.as_str());
        Self {
            name: zone.as_str().to_owned(),
            catalog_name: tenant.id.to_string(),
            full_name: full_name.clone(),
            comment: Some(zone_comment(zone).to_owned()),
            properties: BTreeMap::new(),
            created_at: millis(tenant.created_at),
            updated_at: millis(tenant.created_at),
            schema_id: full_name,
        }
    }
}

/// The columns of a Delta schema, as Unity Catalog describes them.
pub fn columns(metadata: &TableMetadata) -> Vec<ColumnInfo> {
    metadata
        .fields
        .iter()
        .zip(0..)
        .map(|(field, position)| {
            let (precision, scale) = field.data_type.precision_scale();
            ColumnInfo {
                name: field.name.clone(),
                type_text: field.data_type.spark_text(),
                type_json: field.to_json().to_string(),
                type_name: field.data_type.uc_type_name(),
                type_precision: i32::from(precision),
                type_scale: i32::from(scale),
                position,
                comment: field.comment().map(str::to_owned),
                nullable: field.nullable,
                partition_index: metadata
                    .partition_by
                    .iter()
                    .position(|p| *p == field.name)
                    .and_then(|i| i32::try_from(i).ok()),
            }
        })
        .collect()
}

impl TableInfo {
    /// A table at `location`, with the columns of `metadata` (none when omitted).
    pub fn of(
        tenant: &Tenant,
        record: &TableRecord,
        location: String,
        metadata: Option<&TableMetadata>,
    ) -> Self {
        let zone = record.spec.zone.as_str();
        let name = record.spec.name.to_string();
        Self {
            full_name: format!("{}.{zone}.{name}", tenant.id),
            name,
            catalog_name: tenant.id.to_string(),
            schema_name: zone.to_owned(),
            table_type: "EXTERNAL",
            data_source_format: "DELTA",
            columns: metadata.map(columns).unwrap_or_default(),
            storage_location: location,
            comment: record.spec.description.clone(),
            properties: metadata.map(|m| m.configuration.clone()).unwrap_or_default(),
            created_at: millis(record.created_at),
            updated_at: millis(record.updated_at),
            table_id: record.id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tenancy::datatype::schema_fields;

    #[test]
    fn columns_carry_spark_text_json_positions_and_partition_indexes() {
        let fields = schema_fields(&json!({"type": "struct", "fields": [
            {"name": "id", "type": "long", "nullable": false, "metadata": {"comment": "the id"}},
            {"name": "price", "type": "decimal(10,2)", "nullable": true, "metadata": {}},
            {"name": "day", "type": "date", "nullable": true, "metadata": {}},
        ]}))
        .expect("schema");
        let metadata = TableMetadata {
            version: 3,
            fields,
            partition_by: vec!["day".into()],
            configuration: BTreeMap::new(),
        };
        let cols = columns(&metadata);
        let mut got = serde_json::to_value(&cols[0]).expect("json");
        // `type_json` is a string holding Spark's StructField JSON.
        let type_json: serde_json::Value =
            serde_json::from_str(got["type_json"].as_str().expect("a string")).expect("JSON inside");
        assert_eq!(
            type_json,
            json!({"name": "id", "type": "long", "nullable": false, "metadata": {"comment": "the id"}})
        );
        got.as_object_mut().expect("object").remove("type_json");
        assert_eq!(
            got,
            json!({"name": "id", "type_text": "bigint", "type_name": "LONG", "type_precision": 0,
                "type_scale": 0, "position": 0, "comment": "the id", "nullable": false})
        );
        assert_eq!(
            (
                cols[1].type_precision,
                cols[1].type_scale,
                cols[1].type_text.as_str()
            ),
            (10, 2, "decimal(10,2)")
        );
        assert_eq!((cols[2].position, cols[2].partition_index), (2, Some(0)));
        assert_eq!(cols[0].partition_index, None);
    }
}
