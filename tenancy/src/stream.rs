//! Ingestion streams: a source (HTTP push or a Kafka topic) bound to a bronze table, with the
//! validation of their definitions, the metadata columns ingestion adds and the dead-letter
//! table layout.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::role::Zone;
use crate::table::{ColumnSpec, ColumnType, TableName, TableSpec};
use crate::validation::{Violation, Violations};

/// Column every ingested row gets: when the plane received it.
pub const INGESTED_AT: &str = "_ingested_at";
/// Kafka rows: the partition the record came from.
pub const KAFKA_PARTITION: &str = "_kafka_partition";
/// Kafka rows: the record's offset in its partition.
pub const KAFKA_OFFSET: &str = "_kafka_offset";
/// Kafka rows: the record's own timestamp.
pub const KAFKA_TIMESTAMP: &str = "_kafka_timestamp";
/// Suffix of a stream's dead-letter table.
pub const DLQ_SUFFIX: &str = "__dlq";
/// Longest Kafka topic name (Kafka's own limit).
pub const MAX_TOPIC_CHARS: usize = 249;
/// Most bootstrap servers a stream may list.
pub const MAX_BOOTSTRAP_SERVERS: usize = 32;

/// Kafka client properties a tenant may set: they select authentication and nothing that
/// could point the plane's client at files or change its delivery semantics.
pub const KAFKA_PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
];
/// Of those, the ones that are secrets: stored sealed, never returned or logged.
pub const KAFKA_SECRET_PROPERTIES: &[&str] = &["sasl.password"];

/// A stream name, unique within a tenant: the same shape as a table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamName(String);

impl StreamName {
    /// Validates a candidate name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        crate::table::check_identifier(raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a name read back from the store, which only holds validated names.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a new Kafka stream starts when its table holds no position for a partition yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest record the broker keeps.
    Earliest,
    /// Only records produced after the stream starts.
    Latest,
}

/// What happens to events that do not fit the table's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse the whole request; nothing is written.
    #[default]
    Reject,
    /// Write the good events; the bad ones go to the dead-letter table.
    Dlq,
}

impl OnError {
    /// Parses `reject` or `dlq`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "reject" => Some(Self::Reject),
            "dlq" => Some(Self::Dlq),
            _ => None,
        }
    }

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Dlq => "dlq",
        }
    }
}

/// A validated Kafka source. `secrets` hold sealed values (see the ingest layer), never plain
/// text; the domain never sees the plain values after validation. `Debug` shows secret names
/// only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSource {
    /// `host:port` pairs.
    pub bootstrap_servers: Vec<String>,
    /// The topic consumed.
    pub topic: String,
    /// Where to start without a recorded position.
    pub start: StartFrom,
    /// Allowed, non-secret client properties.
    pub properties: BTreeMap<String, String>,
    /// Secret client properties, sealed.
    pub secrets: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic", &self.topic)
            .field("start", &self.start)
            .field("properties", &self.properties)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A validated stream source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamSource {
    /// Events pushed to the plane's HTTP endpoint.
    Http,
    /// Records consumed from a Kafka topic.
    Kafka(KafkaSource),
}

impl StreamSource {
    /// `http` or `kafka`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Kafka(_) => "kafka",
        }
    }
}

/// The table side of a stream request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamTableRef {
    /// Must be `bronze`.
    pub zone: String,
    /// An existing bronze table.
    pub name: String,
}

/// A stream source as the API receives it. `Debug` hides property values (one is a password).
#[derive(Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `http` or `kafka`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Kafka: comma-separated `host:port` list.
    pub bootstrap_servers: Option<String>,
    /// Kafka: the topic.
    pub topic: Option<String>,
    /// Kafka: `earliest` (default) or `latest`.
    pub start: Option<String>,
    /// Kafka: client properties from the allowlist (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl fmt::Debug for RawSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSource")
            .field("kind", &self.kind)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic", &self.topic)
            .field("start", &self.start)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A stream definition as the API receives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    /// Stream name.
    pub name: String,
    /// The bronze table it writes.
    pub table: StreamTableRef,
    /// Where events come from.
    pub source: RawSource,
    /// `reject` (default) or `dlq`.
    pub on_error: Option<String>,
}

/// A validated stream definition; secret properties are still plain and must be sealed before
/// the source is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name.
    pub name: StreamName,
    /// The bronze table.
    pub table: TableName,
    /// The source (secrets still plain in `KafkaSource::secrets`).
    pub source: StreamSource,
    /// Default error handling.
    pub on_error: OnError,
}

fn check_bootstrap(raw: &str) -> Result<Vec<String>, String> {
    let servers: Vec<String> = raw.split(',').map(|s| s.trim().to_owned()).collect();
    if servers.len() > MAX_BOOTSTRAP_SERVERS {
        return Err(format!("at most {MAX_BOOTSTRAP_SERVERS} servers"));
    }
    for server in &servers {
        let Some((host, port)) = server.rsplit_once(':') else {
            return Err(format!("{server:?} is not host:port"));
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
        if !host_ok {
            return Err(format!("{server:?} has an invalid host"));
        }
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("{server:?} has an invalid port"));
        }
    }
    Ok(servers)
}

/// Kafka's topic rule: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
fn check_topic(raw: &str) -> Result<(), String> {
    if raw.is_empty() || raw.len() > MAX_TOPIC_CHARS {
        return Err(format!("must be 1 to {MAX_TOPIC_CHARS} characters"));
    }
    if raw == "." || raw == ".." {
        return Err("must not be . or ..".to_owned());
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may contain only letters, digits, '.', '_' and '-'".to_owned());
    }
    Ok(())
}

/// Checks one allowlisted property's value; unknown keys are refused by the caller.
fn check_property(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err("must be 1 to 1024 printable characters".to_owned());
    }
    match key {
        "security.protocol" => match value {
            "plaintext" | "sasl_plaintext" => Ok(()),
            "ssl" | "sasl_ssl" => Err(format!(
                "{value} is not supported by this build (its Kafka client has no TLS); use plaintext or sasl_plaintext on a private network"
            )),
            _ => Err("must be plaintext or sasl_plaintext".to_owned()),
        },
        "sasl.mechanism" => match value {
            "PLAIN" => Ok(()),
            _ => Err("must be PLAIN (SCRAM and OAUTHBEARER are not supported by this build)".to_owned()),
        },
        _ => Ok(()),
    }
}

fn check_kafka(source: RawSource, violations: &mut Violations) -> Option<KafkaSource> {
    let servers = match source.bootstrap_servers.as_deref() {
        None => {
            violations.push(Violation::new(
                "source.bootstrap_servers",
                "required for a kafka source",
            ));
            None
        }
        Some(raw) => {
            violations.check(check_bootstrap(raw).map_err(|m| Violation::new("source.bootstrap_servers", m)))
        }
    };
    let topic = match source.topic {
        None => {
            violations.push(Violation::new("source.topic", "required for a kafka source"));
            None
        }
        Some(topic) => violations
            .check(check_topic(&topic).map_err(|m| Violation::new("source.topic", m)))
            .map(|()| topic),
    };
    let start = match source.start.as_deref() {
        None | Some("earliest") => Some(StartFrom::Earliest),
        Some("latest") => Some(StartFrom::Latest),
        Some(_) => {
            violations.push(Violation::new("source.start", "must be earliest or latest"));
            None
        }
    };
    let mut properties = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (key, value) in source.properties {
        let field = format!("source.properties.{key}");
        if !KAFKA_PROPERTIES.contains(&key.as_str()) {
            violations.push(Violation::new(
                field,
                format!(
                    "not an allowed property; allowed: {}",
                    KAFKA_PROPERTIES.join(", ")
                ),
            ));
            continue;
        }
        if violations
            .check(check_property(&key, &value).map_err(|m| Violation::new(field, m)))
            .is_none()
        {
            continue;
        }
        if KAFKA_SECRET_PROPERTIES.contains(&key.as_str()) {
            secrets.insert(key, value);
        } else {
            properties.insert(key, value);
        }
    }
    let sasl = properties.get("security.protocol").map(String::as_str) == Some("sasl_plaintext");
    if sasl && (!properties.contains_key("sasl.username") || !secrets.contains_key("sasl.password")) {
        violations.push(Violation::new(
            "source.properties",
            "sasl_plaintext needs sasl.username and sasl.password",
        ));
    }
    Some(KafkaSource {
        bootstrap_servers: servers?,
        topic: topic?,
        start: start?,
        properties,
        secrets,
    })
}

impl StreamRequest {
    /// Validates the definition, reporting every problem at once.
    pub fn validate(self) -> Result<StreamSpec, Vec<Violation>> {
        let mut violations = Violations::default();
        let name = violations.check(StreamName::parse(&self.name).map_err(|m| Violation::new("name", m)));
        if Zone::parse(&self.table.zone) != Some(Zone::Bronze) {
            violations.push(Violation::new(
                "table.zone",
                "streams write bronze tables: must be bronze",
            ));
        }
        let table =
            violations.check(TableName::parse(&self.table.name).map_err(|m| Violation::new("table.name", m)));
        if let Some(table) = &table {
            violations.check(TableName::parse(&dlq_name(table)).map_err(|m| {
                Violation::new(
                    "table.name",
                    format!("its dead-letter table name {} {m}", dlq_name(table)),
                )
            }));
            if table.as_str().ends_with(DLQ_SUFFIX) {
                violations.push(Violation::new(
                    "table.name",
                    "a dead-letter table cannot be a stream's table",
                ));
            }
        }
        let on_error = match self.on_error.as_deref() {
            None => Some(OnError::Reject),
            Some(raw) => violations.check(
                OnError::parse(raw).ok_or_else(|| Violation::new("on_error", "must be reject or dlq")),
            ),
        };
        let source = match self.source.kind.as_str() {
            "http" => {
                let RawSource {
                    bootstrap_servers,
                    topic,
                    start,
                    properties,
                    ..
                } = &self.source;
                for (field, set) in [
                    ("source.bootstrap_servers", bootstrap_servers.is_some()),
                    ("source.topic", topic.is_some()),
                    ("source.start", start.is_some()),
                    ("source.properties", !properties.is_empty()),
                ] {
                    if set {
                        violations.push(Violation::new(field, "only a kafka source takes this"));
                    }
                }
                Some(StreamSource::Http)
            }
            "kafka" => check_kafka(self.source, &mut violations).map(StreamSource::Kafka),
            _ => {
                violations.push(Violation::new("source.type", "must be http or kafka"));
                None
            }
        };
        let (Some(name), Some(table), Some(source), Some(on_error)) = (name, table, source, on_error) else {
            return Err(violations.finish(|| ()).err().unwrap_or_default());
        };
        violations.finish(|| StreamSpec {
            name,
            table,
            source,
            on_error,
        })
    }
}

/// The dead-letter table of a stream on `table`.
pub fn dlq_name(table: &TableName) -> String {
    format!("{table}{DLQ_SUFFIX}")
}

/// Whether a column is one ingestion adds (callers never send these).
pub fn is_metadata_column(name: &str) -> bool {
    matches!(
        name,
        INGESTED_AT | KAFKA_PARTITION | KAFKA_OFFSET | KAFKA_TIMESTAMP
    )
}

fn column(name: &str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.to_owned(),
        column_type,
        nullable: true,
    }
}

/// The columns ingestion adds to a table for a source, in order.
pub fn metadata_columns(source: &StreamSource) -> Vec<ColumnSpec> {
    let mut columns = vec![column(INGESTED_AT, ColumnType::Timestamp)];
    if matches!(source, StreamSource::Kafka(_)) {
        columns.push(column(KAFKA_PARTITION, ColumnType::Integer));
        columns.push(column(KAFKA_OFFSET, ColumnType::Long));
        columns.push(column(KAFKA_TIMESTAMP, ColumnType::Timestamp));
    }
    columns
}

/// Metadata columns the table lacks for this source (added as nullable columns, so rows written
/// before the stream existed stay valid).
pub fn missing_metadata_columns(spec: &TableSpec, source: &StreamSource) -> Vec<ColumnSpec> {
    metadata_columns(source)
        .into_iter()
        .filter(|c| !spec.columns.iter().any(|have| have.name == c.name))
        .collect()
}

/// Dead-letter columns: the raw payload, why it was refused, where it came from.
pub const DLQ_PAYLOAD: &str = "payload";
/// Dead-letter column: the error.
pub const DLQ_ERROR: &str = "error";
/// Dead-letter column: the source position (`line 3 of request <id>`, `partition 2 offset 17`).
pub const DLQ_POSITION: &str = "source_position";

/// The dead-letter table for a stream on `table` (partitioned by nothing; small by nature).
pub fn dlq_spec(table: &TableName, source: &StreamSource) -> TableSpec {
    let mut columns = vec![
        ColumnSpec {
            name: DLQ_PAYLOAD.to_owned(),
            column_type: ColumnType::String,
            nullable: false,
        },
        ColumnSpec {
            name: DLQ_ERROR.to_owned(),
            column_type: ColumnType::String,
            nullable: false,
        },
        ColumnSpec {
            name: DLQ_POSITION.to_owned(),
            column_type: ColumnType::String,
            nullable: false,
        },
    ];
    columns.extend(metadata_columns(source));
    TableSpec {
        zone: Zone::Bronze,
        name: TableName::from_trusted(dlq_name(table)),
        columns,
        partition_by: Vec::new(),
        event_time_column: Some(INGESTED_AT.to_owned()),
        z_order_by: Vec::new(),
        description: Some(format!("Events refused by streams on {table}")),
        target_file_size_bytes: crate::table::DEFAULT_TARGET_FILE_SIZE,
        subject_columns: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source: serde_json::Value) -> StreamRequest {
        serde_json::from_value(serde_json::json!({
            "name": "clicks",
            "table": {"zone": "bronze", "name": "events"},
            "source": source,
        }))
        .expect("shape")
    }

    fn fields(result: Result<StreamSpec, Vec<Violation>>) -> Vec<String> {
        result
            .expect_err("invalid")
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn http_and_kafka_sources_validate() {
        let http = request(serde_json::json!({"type": "http"}))
            .validate()
            .expect("valid");
        assert_eq!(http.source, StreamSource::Http);
        assert_eq!(http.on_error, OnError::Reject);
        let kafka = request(serde_json::json!({
            "type": "kafka", "bootstrap_servers": "127.0.0.1:9092, broker-2.internal:9093",
            "topic": "web.clicks-v1", "start": "latest",
            "properties": {"security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN",
                           "sasl.username": "u", "sasl.password": "s3cret"}
        }))
        .validate()
        .expect("valid");
        let StreamSource::Kafka(source) = kafka.source else {
            panic!("kafka expected")
        };
        assert_eq!(
            source.bootstrap_servers,
            ["127.0.0.1:9092", "broker-2.internal:9093"]
        );
        assert_eq!(source.start, StartFrom::Latest);
        assert_eq!(
            source.secrets.get("sasl.password").map(String::as_str),
            Some("s3cret")
        );
        assert!(
            !source.properties.contains_key("sasl.password"),
            "secrets are kept apart"
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut bad = request(serde_json::json!({
            "type": "kafka", "bootstrap_servers": "nohost", "topic": "a/b", "start": "middle",
            "properties": {"ssl.keystore.location": "/etc/passwd", "security.protocol": "ssl"}
        }));
        bad.name = "Bad Name".into();
        bad.table.zone = "silver".into();
        bad.on_error = Some("ignore".into());
        let mut got = fields(bad.validate());
        got.sort();
        assert_eq!(
            got,
            [
                "name",
                "on_error",
                "source.bootstrap_servers",
                "source.properties.security.protocol",
                "source.properties.ssl.keystore.location",
                "source.start",
                "source.topic",
                "table.zone",
            ]
        );
        assert_eq!(
            fields(request(serde_json::json!({"type": "http", "topic": "t"})).validate()),
            ["source.topic"]
        );
        assert_eq!(
            fields(request(serde_json::json!({"type": "ftp"})).validate()),
            ["source.type"]
        );
        assert_eq!(
            fields(request(serde_json::json!({"type": "kafka", "topic": "t"})).validate()),
            ["source.bootstrap_servers"]
        );
        assert_eq!(
            fields(
                request(
                    serde_json::json!({"type": "kafka", "bootstrap_servers": "h:1", "topic": "t",
                "properties": {"security.protocol": "sasl_plaintext"}})
                )
                .validate()
            ),
            ["source.properties"]
        );
    }

    #[test]
    fn table_names_leave_room_for_the_dead_letter_table() {
        let mut long = request(serde_json::json!({"type": "http"}));
        long.table.name = "t".repeat(59);
        assert_eq!(fields(long.validate()), ["table.name"]);
        let mut fits = request(serde_json::json!({"type": "http"}));
        fits.table.name = "t".repeat(58);
        assert!(fits.validate().is_ok());
        let mut dlq = request(serde_json::json!({"type": "http"}));
        dlq.table.name = "events__dlq".into();
        assert_eq!(fields(dlq.validate()), ["table.name"]);
    }

    #[test]
    fn metadata_columns_follow_the_source() {
        let names =
            |s: &StreamSource| -> Vec<String> { metadata_columns(s).into_iter().map(|c| c.name).collect() };
        assert_eq!(names(&StreamSource::Http), [INGESTED_AT]);
        let kafka = StreamSource::Kafka(KafkaSource {
            bootstrap_servers: vec!["h:1".into()],
            topic: "t".into(),
            start: StartFrom::Earliest,
            properties: BTreeMap::new(),
            secrets: BTreeMap::new(),
        });
        assert_eq!(
            names(&kafka),
            [INGESTED_AT, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_TIMESTAMP]
        );
        assert!(
            metadata_columns(&kafka)
                .iter()
                .all(|c| c.nullable && is_metadata_column(&c.name))
        );
        let dlq = dlq_spec(&TableName::from_trusted("events".into()), &kafka);
        assert_eq!(dlq.name.as_str(), "events__dlq");
        assert_eq!(dlq.columns.len(), 7);
    }
}
