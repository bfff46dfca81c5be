//! Column definitions to and from Delta schemas. The API's type names are Delta's own
//! (`long`, `timestamp`, `decimal(10,2)`, ...), so both directions go through that name.

use deltalake::kernel::{DataType, StructField, StructType};
use tenancy::datatype::Field;
use tenancy::table::ColumnSpec;

use super::DeltaError;

/// The Delta field for a column.
pub fn to_field(column: &ColumnSpec) -> Result<StructField, DeltaError> {
    let name = column.column_type.to_string();
    let data_type: DataType =
        serde_json::from_value(serde_json::Value::String(name.clone())).map_err(|e| {
            DeltaError::UnsupportedType {
                column: column.name.clone(),
                detail: format!("{name}: {e}"),
            }
        })?;
    Ok(StructField::new(column.name.clone(), data_type, column.nullable))
}

/// The fields of a Delta schema, nested types included, whoever wrote it.
pub fn columns(schema: &StructType) -> Result<Vec<Field>, DeltaError> {
    let unsupported = |detail: String| DeltaError::UnsupportedType {
        column: "(schema)".to_owned(),
        detail,
    };
    let raw = serde_json::to_value(schema).map_err(|e| unsupported(e.to_string()))?;
    tenancy::datatype::schema_fields(&raw).map_err(unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    use tenancy::table::ColumnType;

    #[test]
    fn every_api_type_round_trips_through_delta() {
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
            "decimal(38,0)",
        ] {
            let column = ColumnSpec {
                name: "c".into(),
                column_type: ColumnType::parse(name).expect("known type"),
                nullable: name != "long",
            };
            let field = to_field(&column).expect("maps");
            let back = columns(&StructType::try_new([field]).expect("schema")).expect("maps back");
            assert_eq!(back.len(), 1);
            assert_eq!(
                (
                    back[0].name.as_str(),
                    back[0].data_type.delta_text(),
                    back[0].nullable
                ),
                ("c", name.to_owned(), column.nullable),
                "{name}"
            );
        }
    }

    /// deltalake's own schema JSON (as it writes `schemaString`) reads into the same tree and
    /// is written back identically, nested types and `timestamp_ntz` included.
    #[test]
    fn deltalake_schemas_with_nested_types_read_and_write_back_identically() {
        use deltalake::kernel::{ArrayType, MapType, PrimitiveType};
        let point = StructType::try_new([
            StructField::new("x", DataType::Primitive(PrimitiveType::Double), false),
            StructField::new("y", DataType::Primitive(PrimitiveType::Double), true),
        ])
        .expect("struct");
        let schema = StructType::try_new([
            StructField::new("id", DataType::Primitive(PrimitiveType::Long), false),
            StructField::new("at", DataType::Primitive(PrimitiveType::TimestampNtz), true),
            StructField::new(
                "tags",
                DataType::Array(Box::new(ArrayType::new(
                    DataType::Primitive(PrimitiveType::String),
                    true,
                ))),
                true,
            ),
            StructField::new(
                "counts",
                DataType::Map(Box::new(MapType::new(
                    DataType::Primitive(PrimitiveType::String),
                    DataType::Primitive(PrimitiveType::Integer),
                    false,
                ))),
                true,
            ),
            StructField::new("point", DataType::Struct(Box::new(point)), true),
        ])
        .expect("schema");
        let fields = columns(&schema).expect("reads");
        let texts: Vec<String> = fields.iter().map(|f| f.data_type.spark_text()).collect();
        assert_eq!(
            texts,
            [
                "bigint",
                "timestamp_ntz",
                "array<string>",
                "map<string,int>",
                "struct<x:double,y:double>"
            ]
        );
        let written = serde_json::to_value(&schema).expect("json");
        let rebuilt = serde_json::json!({"type": "struct",
            "fields": fields.iter().map(tenancy::datatype::Field::to_json).collect::<Vec<_>>()});
        assert_eq!(rebuilt, written);
        assert!(matches!(
            fields[2].data_type,
            tenancy::datatype::DataType::Array { .. }
        ));
    }
}
