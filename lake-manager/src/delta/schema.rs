//! Column definitions to and from Delta schemas. The API's type names are Delta's own
//! (`long`, `timestamp`, `decimal(10,2)`, ...), so both directions go through that name.

use deltalake::kernel::{DataType, StructField, StructType};
use tenancy::table::{ColumnSpec, ColumnType};

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

/// The columns of a Delta schema, as the API describes them.
pub fn columns(schema: &StructType) -> Result<Vec<ColumnSpec>, DeltaError> {
    schema
        .fields()
        .map(|field| {
            let unsupported = |detail: String| DeltaError::UnsupportedType {
                column: field.name().to_owned(),
                detail,
            };
            let raw = serde_json::to_value(field.data_type()).map_err(|e| unsupported(e.to_string()))?;
            let name = raw.as_str().ok_or_else(|| unsupported(raw.to_string()))?;
            let column_type = ColumnType::parse(name).map_err(unsupported)?;
            Ok(ColumnSpec {
                name: field.name().to_owned(),
                column_type,
                nullable: field.is_nullable(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(back, vec![column], "{name}");
        }
    }
}
