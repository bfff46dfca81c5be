//! Planning a pipeline against its source's schema: every expression parsed and type-checked
//! by DataFusion when the pipeline is created, so that a bad one is refused with the parser's
//! or planner's own words (and the field that holds it) instead of failing later in a run.
//!
//! The plan is built on an empty in-memory table of the source's schema; nothing is read.
//! Each expression is parsed alone (`parse_sql_expr` demands the end of input after one
//! expression, and sees no tables), so an expression cannot smuggle in a second clause or read
//! another table.

use deltalake::arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::common::tree_node::TreeNode;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::logical_expr::ExprSchemable;
use deltalake::datafusion::prelude::{Expr, SessionContext, col};
use tenancy::pipeline::{PipelineSpec, VIOLATIONS_COLUMN};
use tenancy::table::{ColumnSpec, ColumnType};
use tenancy::validation::Violation;

/// What planning found: the output's columns, as the target table holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The target's columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// The quarantine table's columns (the rows before any aggregate, plus `_violations`), when
    /// an expectation quarantines.
    pub quarantine: Option<Vec<ColumnSpec>>,
}

/// The DataFusion message without its backtrace or the `Error during planning:` preamble
/// repeated by nesting; what a user can act on.
pub(crate) fn message(error: &DataFusionError) -> String {
    error.strip_backtrace().trim().to_owned()
}

fn violation(field: String, expr: &str, error: &DataFusionError) -> Violation {
    Violation::new(field, format!("{expr}: {}", message(error)))
}

/// Parses one expression over `over`'s columns. Subqueries are refused: an expression reads
/// the row it is given, not tables (a subquery could also reach table functions such as
/// `generate_series` and run unbounded inside the server).
fn parse(over: &DataFrame, field: String, expr: &str, violations: &mut Vec<Violation>) -> Option<Expr> {
    match over.parse_sql_expr(expr) {
        Ok(parsed) => {
            let subquery = parsed
                .exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                    ))
                })
                .unwrap_or(true);
            if subquery {
                violations.push(Violation::new(
                    field,
                    format!("{expr}: subqueries are not allowed; an expression reads the row's columns"),
                ));
                return None;
            }
            Some(parsed)
        }
        Err(e) => {
            violations.push(violation(field, expr, &e));
            None
        }
    }
}

/// The table column type an output's Arrow type is stored as, or why it cannot be.
pub fn column_type(data_type: &DataType) -> Result<ColumnType, String> {
    Ok(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
        DataType::Int64 => ColumnType::Long,
        DataType::Int32 => ColumnType::Integer,
        DataType::Int16 => ColumnType::Short,
        DataType::Int8 => ColumnType::Byte,
        DataType::Float64 => ColumnType::Double,
        DataType::Float32 => ColumnType::Float,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ColumnType::Binary,
        DataType::Date32 => ColumnType::Date,
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if is_utc(tz) => ColumnType::Timestamp,
        DataType::Decimal128(precision, scale) => {
            let precision = *precision;
            let scale = u8::try_from(*scale).map_err(|_| format!("a negative decimal scale ({scale})"))?;
            ColumnType::Decimal { precision, scale }
        }
        DataType::Timestamp(_, _) => {
            return Err(format!(
                "its type is {data_type}; a table timestamp is microseconds in UTC: \
                 CAST it AS TIMESTAMP, or use to_timestamp_micros(...) AT TIME ZONE 'UTC'"
            ));
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            return Err(format!(
                "its type is {data_type}; tables hold signed integers: CAST it AS BIGINT"
            ));
        }
        other => return Err(format!("its type is {other}, which a table column cannot hold")),
    })
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "+00:00" | "Z" | "Etc/UTC")
}

/// A DataFrame over no rows of `schema`.
pub(crate) fn empty(ctx: &SessionContext, schema: SchemaRef) -> Result<DataFrame, DataFusionError> {
    ctx.read_batch(RecordBatch::new_empty(schema))
}

/// The expressions of the select, aliased to their output names; every source column as it
/// is when there is no select (but `hidden`, a column the scan adds).
pub(crate) fn select_exprs(
    spec: &PipelineSpec,
    source: &DataFrame,
    hidden: Option<&str>,
    violations: &mut Vec<Violation>,
) -> Vec<Expr> {
    match &spec.select {
        None => source
            .schema()
            .fields()
            .iter()
            .filter(|f| Some(f.name().as_str()) != hidden)
            .map(|f| col(format!("\"{}\"", f.name())))
            .collect(),
        Some(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                parse(source, format!("select[{i}].expr"), &item.expr, violations)
                    .map(|e| e.alias(&item.name))
            })
            .collect(),
    }
}

/// The expectations' boolean expressions over the output rows (before any aggregate).
pub(crate) fn expectation_exprs(
    spec: &PipelineSpec,
    rows: &DataFrame,
    violations: &mut Vec<Violation>,
) -> Vec<Expr> {
    let schema: &DFSchema = rows.schema();
    spec.expectations
        .iter()
        .enumerate()
        .filter_map(|(i, expectation)| {
            let field = format!("expectations[{i}].expr");
            match parse(rows, field.clone(), &expectation.expr, violations).ok_or(()) {
                Ok(expr) => match expr.get_type(schema) {
                    Ok(DataType::Boolean) => Some(expr),
                    Ok(DataType::Null) => Some(expr),
                    Ok(other) => {
                        violations.push(Violation::new(
                            field,
                            format!(
                                "{}: must be true or false for each row, not {other}",
                                expectation.expr
                            ),
                        ));
                        None
                    }
                    Err(e) => {
                        violations.push(violation(field, &expectation.expr, &e));
                        None
                    }
                },
                Err(()) => None,
            }
        })
        .collect()
}

fn check_columns(field: &str, names: &[String], schema: &DFSchema, violations: &mut Vec<Violation>) {
    for (i, name) in names.iter().enumerate() {
        if schema.field_with_unqualified_name(name).is_err() {
            violations.push(Violation::new(
                format!("{field}[{i}]"),
                format!("{name} is not an output column"),
            ));
        }
    }
}

/// The columns of a planned output, each mapped to a table column type.
fn output_columns(
    schema: &Schema,
    field_of: impl Fn(&str) -> String,
    violations: &mut Vec<Violation>,
) -> Vec<ColumnSpec> {
    schema
        .fields()
        .iter()
        .filter_map(|f| match column_type(f.data_type()) {
            Ok(column_type) => Some(ColumnSpec {
                name: f.name().clone(),
                column_type,
                nullable: f.is_nullable(),
            }),
            Err(why) => {
                violations.push(Violation::new(field_of(f.name()), format!("{}: {why}", f.name())));
                None
            }
        })
        .collect()
}

/// The DataFrame of the aggregate over the (expectation-checked) rows.
pub(crate) fn aggregate(
    spec: &PipelineSpec,
    rows: DataFrame,
    violations: &mut Vec<Violation>,
) -> Option<DataFrame> {
    let aggregate = spec.aggregate.as_ref()?;
    check_columns(
        "aggregate.group_by",
        &aggregate.group_by,
        rows.schema(),
        violations,
    );
    let measures: Vec<Expr> = aggregate
        .measures
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            parse(
                &rows,
                format!("aggregate.measures[{i}].expr"),
                &m.expr,
                violations,
            )
            .map(|e| e.alias(&m.name))
        })
        .collect();
    if !violations.is_empty() {
        return None;
    }
    let groups: Vec<Expr> = aggregate
        .group_by
        .iter()
        .map(|g| col(format!("\"{g}\"")))
        .collect();
    match rows.aggregate(groups, measures) {
        Ok(df) => Some(df),
        Err(e) => {
            violations.push(Violation::new(
                "aggregate.measures",
                format!(
                    "each measure must aggregate (sum, count, min, max, avg, ...): {}",
                    message(&e)
                ),
            ));
            None
        }
    }
}

/// Plans `spec` over a source of `source` schema: every expression parsed and type-checked,
/// the output's columns derived. Every problem is reported at once, by field.
pub async fn plan(spec: &PipelineSpec, source: SchemaRef) -> Result<Planned, Vec<Violation>> {
    let ctx = SessionContext::new();
    let mut violations = Vec::new();
    let input = empty(&ctx, source).map_err(|e| vec![Violation::new("source.table", message(&e))])?;
    let exprs = select_exprs(spec, &input, None, &mut violations);
    if !violations.is_empty() {
        return Err(violations);
    }
    let rows = match input.select(exprs) {
        Ok(rows) => rows,
        Err(e) => return Err(vec![Violation::new("select", message(&e))]),
    };
    // Type coercion and the checks behind it run when the plan is analysed, not when it is
    // built: a select like `name + 1` fails only here.
    if let Err(e) = rows.clone().into_optimized_plan() {
        return Err(vec![Violation::new("select", message(&e))]);
    }
    let expectations = expectation_exprs(spec, &rows, &mut violations);
    for (expr, (i, expectation)) in expectations.iter().zip(spec.expectations.iter().enumerate()) {
        if let Err(e) = rows
            .clone()
            .filter(expr.clone())
            .and_then(|df| df.into_optimized_plan())
        {
            violations.push(violation(
                format!("expectations[{i}].expr"),
                &expectation.expr,
                &e,
            ));
        }
    }
    if let Some(dedup) = &spec.dedup {
        check_columns("dedup.keys", &dedup.keys, rows.schema(), &mut violations);
        if let Some(order_by) = &dedup.order_by {
            check_columns(
                "dedup.order_by",
                std::slice::from_ref(order_by),
                rows.schema(),
                &mut violations,
            );
        }
    }
    let row_schema: Schema = rows.schema().as_arrow().clone();
    let row_columns = output_columns(
        &row_schema,
        |name| match spec
            .select
            .as_ref()
            .and_then(|s| s.iter().position(|i| i.name == name))
        {
            Some(i) => format!("select[{i}].expr"),
            None => "source.table".to_owned(),
        },
        &mut violations,
    );
    let output = match aggregate(spec, rows, &mut violations) {
        Some(df) => {
            if let Err(e) = df.clone().into_optimized_plan() {
                violations.push(Violation::new("aggregate.measures", message(&e)));
            }
            let schema: Schema = df.schema().as_arrow().clone();
            output_columns(
                &schema,
                |name| {
                    spec.aggregate
                        .as_ref()
                        .and_then(|a| a.measures.iter().position(|m| m.name == name))
                        .map_or_else(
                            || "aggregate.group_by".to_owned(),
                            |i| format!("aggregate.measures[{i}].expr"),
                        )
                },
                &mut violations,
            )
        }
        None => row_columns.clone(),
    };
    if !violations.is_empty() {
        return Err(violations);
    }
    let quarantine = spec.quarantines().then(|| {
        let mut columns = row_columns;
        columns.push(ColumnSpec {
            name: VIOLATIONS_COLUMN.to_owned(),
            column_type: ColumnType::String,
            nullable: false,
        });
        columns
    });
    Ok(Planned {
        columns: output,
        quarantine,
    })
}

/// Why an existing target (or quarantine) table cannot take the planned output: a column it
/// lacks, or one of another type. Extra nullable target columns are fine (left null).
pub fn check_target(planned: &[ColumnSpec], existing: &[ColumnSpec]) -> Result<(), String> {
    for column in planned {
        match existing.iter().find(|e| e.name == column.name) {
            None => return Err(format!("the table has no column {}", column.name)),
            Some(e) if e.column_type != column.column_type => {
                return Err(format!(
                    "column {} is {} in the table, the pipeline makes {}",
                    column.name, e.column_type, column.column_type
                ));
            }
            Some(e) if !e.nullable && column.nullable => {
                return Err(format!(
                    "column {} is required in the table, and the pipeline's may be null: \
                     add an expectation and a COALESCE, or make the column nullable",
                    column.name
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(e) = existing
        .iter()
        .find(|e| !e.nullable && !planned.iter().any(|c| c.name == e.name))
    {
        return Err(format!(
            "the table's required column {} is not in the pipeline's output",
            e.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::datatypes::Field;
    use serde_json::json;
    use tenancy::pipeline::PipelineRequest;

    use super::*;

    fn source() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
            Field::new("country", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]))
    }

    fn spec(body: serde_json::Value) -> PipelineSpec {
        serde_json::from_value::<PipelineRequest>(body)
            .expect("shape")
            .validate()
            .expect("valid")
    }

    fn silver(select: serde_json::Value, expectations: serde_json::Value) -> PipelineSpec {
        spec(json!({
            "name": "clean",
            "source": {"zone": "bronze", "table": "clicks"},
            "target": {"zone": "silver", "table": "clicks"},
            "select": select,
            "expectations": expectations,
            "trigger": {"type": "manual"}
        }))
    }

    fn fields(errors: &[Violation]) -> Vec<&str> {
        errors.iter().map(|v| v.field.as_str()).collect()
    }

    #[tokio::test]
    async fn a_select_plans_to_typed_columns() {
        let planned = plan(
            &silver(
                json!([
                    {"name": "user_id", "expr": "CAST(user_id AS BIGINT)"},
                    {"name": "euros", "expr": "amount / 100.0"},
                    {"name": "country", "expr": "upper(country)"},
                    {"name": "day", "expr": "CAST(at AS DATE)"},
                    {"name": "at", "expr": "at"}
                ]),
                json!([{"name": "positive", "expr": "euros >= 0", "on_violation": "quarantine"}]),
            ),
            source(),
        )
        .await
        .expect("plans");
        let types: Vec<(String, String)> = planned
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.to_string()))
            .collect();
        assert_eq!(
            types,
            [
                ("user_id", "long"),
                ("euros", "double"),
                ("country", "string"),
                ("day", "date"),
                ("at", "timestamp")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let quarantine = planned.quarantine.expect("quarantines");
        assert_eq!(
            quarantine.last().map(|c| c.name.as_str()),
            Some(VIOLATIONS_COLUMN)
        );
        assert_eq!(quarantine.len(), 6);
    }

    #[tokio::test]
    async fn bad_expressions_are_named_with_the_planners_words() {
        let errors = plan(
            &silver(
                json!([
                    {"name": "a", "expr": "no_such_column + 1"},
                    {"name": "b", "expr": "amount +"},
                    {"name": "c", "expr": "amount FROM other"},
                    {"name": "d", "expr": "nosuchfunction(amount)"}
                ]),
                json!([]),
            ),
            source(),
        )
        .await
        .expect_err("refused");
        assert_eq!(
            fields(&errors),
            [
                "select[0].expr",
                "select[1].expr",
                "select[2].expr",
                "select[3].expr"
            ],
            "{errors:#?}"
        );
        assert!(
            errors[0].message.contains("no_such_column"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[3].message.contains("nosuchfunction"),
            "{}",
            errors[3].message
        );
        assert!(errors.iter().all(|e| !e.message.contains("backtrace")));
    }

    #[tokio::test]
    async fn subqueries_are_refused_where_an_expression_goes() {
        let errors = plan(
            &silver(
                json!([
                    {"name": "a", "expr": "(SELECT count(*) FROM generate_series(1, 1000000000))"},
                    {"name": "b", "expr": "amount"}
                ]),
                json!([{"name": "e", "expr": "EXISTS (SELECT 1)", "on_violation": "warn"}]),
            ),
            source(),
        )
        .await
        .expect_err("refused");
        assert_eq!(fields(&errors), ["select[0].expr"], "{errors:#?}");
        assert!(errors[0].message.contains("subqueries"), "{}", errors[0].message);
    }

    #[tokio::test]
    async fn expectations_must_be_boolean_over_the_output() {
        let errors = plan(
            &silver(
                json!([{"name": "n", "expr": "amount"}]),
                json!([
                    {"name": "ok", "expr": "n > 0", "on_violation": "drop"},
                    {"name": "not_bool", "expr": "n + 1", "on_violation": "warn"},
                    {"name": "source_name", "expr": "amount > 0", "on_violation": "fail"}
                ]),
            ),
            source(),
        )
        .await
        .expect_err("refused");
        assert_eq!(
            fields(&errors),
            ["expectations[1].expr", "expectations[2].expr"],
            "{errors:#?}"
        );
        assert!(
            errors[0].message.contains("true or false"),
            "{}",
            errors[0].message
        );
    }

    #[tokio::test]
    async fn types_a_table_cannot_hold_are_refused_with_the_fix() {
        let errors = plan(
            &silver(
                json!([
                    {"name": "u", "expr": "CAST(amount AS INT UNSIGNED)"},
                    {"name": "local", "expr": "CAST(at AS TIMESTAMP)"}
                ]),
                json!([]),
            ),
            source(),
        )
        .await
        .expect_err("refused");
        assert_eq!(
            fields(&errors),
            ["select[0].expr", "select[1].expr"],
            "{errors:#?}"
        );
        assert!(errors[0].message.contains("BIGINT"), "{}", errors[0].message);
    }

    #[tokio::test]
    async fn gold_aggregates_plan_and_non_aggregates_are_refused() {
        let gold = |measures: serde_json::Value| {
            spec(json!({
                "name": "revenue",
                "source": {"zone": "silver", "table": "clicks"},
                "target": {"zone": "gold", "table": "revenue"},
                "aggregate": {"group_by": ["country"], "measures": measures},
                "trigger": {"type": "manual"}
            }))
        };
        let planned = plan(
            &gold(json!([
                {"name": "total", "expr": "sum(amount)"},
                {"name": "clicks", "expr": "count(*)"}
            ])),
            source(),
        )
        .await
        .expect("plans");
        let names: Vec<&str> = planned.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["country", "total", "clicks"]);
        assert_eq!(planned.columns[1].column_type, ColumnType::Long);

        let errors = plan(&gold(json!([{"name": "raw", "expr": "amount"}])), source())
            .await
            .expect_err("not an aggregate");
        assert_eq!(fields(&errors), ["aggregate.measures"], "{errors:#?}");
    }

    #[tokio::test]
    async fn dedup_columns_are_checked_against_the_source_when_there_is_no_select() {
        let spec = spec(json!({
            "name": "dedup",
            "source": {"zone": "bronze", "table": "clicks"},
            "target": {"zone": "silver", "table": "clicks"},
            "dedup": {"keys": ["user_id", "nope"], "keep": "first", "scope": "table"},
            "trigger": {"type": "continuous"}
        }));
        let errors = plan(&spec, source()).await.expect_err("refused");
        assert_eq!(fields(&errors), ["dedup.keys[1]"]);
    }

    #[test]
    fn targets_must_take_the_output() {
        let planned = vec![
            ColumnSpec {
                name: "id".into(),
                column_type: ColumnType::Long,
                nullable: true,
            },
            ColumnSpec {
                name: "name".into(),
                column_type: ColumnType::String,
                nullable: true,
            },
        ];
        let mut existing = planned.clone();
        assert_eq!(check_target(&planned, &existing), Ok(()));
        existing.push(ColumnSpec {
            name: "extra".into(),
            column_type: ColumnType::Date,
            nullable: true,
        });
        assert_eq!(
            check_target(&planned, &existing),
            Ok(()),
            "extra nullable columns stay null"
        );
        existing[2].nullable = false;
        assert!(check_target(&planned, &existing).is_err());
        existing.pop();
        existing[0].column_type = ColumnType::Integer;
        assert!(check_target(&planned, &existing).is_err_and(|e| e.contains("column id is integer")));
        existing[0].column_type = ColumnType::Long;
        existing[1].nullable = false;
        assert!(check_target(&planned, &existing).is_err_and(|e| e.contains("may be null")));
        assert!(check_target(&planned, &existing[..1]).is_err_and(|e| e.contains("no column name")));
    }

    /// The Arrow type a table column is stored as (what the target's writer expects).
    fn arrow_type(column_type: ColumnType) -> DataType {
        match column_type {
            ColumnType::String => DataType::Utf8,
            ColumnType::Long => DataType::Int64,
            ColumnType::Integer => DataType::Int32,
            ColumnType::Short => DataType::Int16,
            ColumnType::Byte => DataType::Int8,
            ColumnType::Double => DataType::Float64,
            ColumnType::Float => DataType::Float32,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        }
    }

    #[test]
    fn every_table_type_maps_back_to_itself() {
        for name in [
            "string",
            "long",
            "integer",
            "short",
            "byte",
            "double",
            "float",
            "boolean",
            "binary",
            "date",
            "timestamp",
            "decimal(10,2)",
        ] {
            let t = ColumnType::parse(name).expect("type");
            assert_eq!(column_type(&arrow_type(t)), Ok(t), "{name}");
        }
    }
}
