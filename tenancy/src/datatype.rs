//! Column types as a Delta schema records them, nested ones included, and the names each API
//! gives them: Delta's own for `/v1` (`long`, `array<string>`), Spark's catalog strings for
//! Unity Catalog's `type_text` (`bigint`, `array<string>`), and Unity Catalog's `type_name`
//! (`LONG`, `ARRAY`). A table any writer made must be describable, so a type this module does
//! not know is kept by its name rather than refused.

use serde_json::{Map, Value, json};

/// A column's data type, as the JSON of a Delta schema (`schemaString`) writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    /// A type written as a bare name (`long`, `timestamp_ntz`, ...), known or not.
    Primitive(String),
    /// `decimal(p,s)`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `array<element>`.
    Array {
        /// The element type.
        element: Box<DataType>,
        /// Whether elements may be null.
        contains_null: bool,
    },
    /// `map<key,value>`.
    Map {
        /// The key type.
        key: Box<DataType>,
        /// The value type.
        value: Box<DataType>,
        /// Whether values may be null.
        value_contains_null: bool,
    },
    /// `struct<name:type,...>`.
    Struct(Vec<Field>),
    /// A type object of a kind this module does not know (a user-defined type, say), kept as
    /// written.
    Other(Value),
}

/// A named field of a schema or of a struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether it may be null.
    pub nullable: bool,
    /// Its metadata (a `comment`, column-mapping ids, ...), as written.
    pub metadata: Map<String, Value>,
}

/// Delta's primitive names and Spark's catalog strings for them, where they differ.
const SPARK_NAMES: [(&str, &str); 4] = [
    ("long", "bigint"),
    ("integer", "int"),
    ("short", "smallint"),
    ("byte", "tinyint"),
];

/// Delta's primitive names and Unity Catalog's type names (`ColumnTypeName`).
const UC_NAMES: [(&str, &str); 14] = [
    ("boolean", "BOOLEAN"),
    ("byte", "BYTE"),
    ("short", "SHORT"),
    ("integer", "INT"),
    ("long", "LONG"),
    ("float", "FLOAT"),
    ("double", "DOUBLE"),
    ("date", "DATE"),
    ("timestamp", "TIMESTAMP"),
    ("timestamp_ntz", "TIMESTAMP_NTZ"),
    ("string", "STRING"),
    ("binary", "BINARY"),
    ("variant", "VARIANT"),
    ("void", "NULL"),
];

impl DataType {
    /// Reads a type from its schema JSON: a name, or an object with a `type` of `array`,
    /// `map` or `struct`.
    pub fn from_json(raw: &Value) -> Result<Self, String> {
        match raw {
            Value::String(name) => Ok(Self::from_name(name)),
            Value::Object(object) => match object.get("type").and_then(Value::as_str) {
                Some("array") => Ok(DataType::Array {
                    element: Box::new(Self::from_json(member(object, "elementType")?)?),
                    contains_null: flag(object, "containsNull")?,
                }),
                Some("map") => Ok(DataType::Map {
                    key: Box::new(Self::from_json(member(object, "keyType")?)?),
                    value: Box::new(Self::from_json(member(object, "valueType")?)?),
                    value_contains_null: flag(object, "valueContainsNull")?,
                }),
                Some("struct") => {
                    let fields = member(object, "fields")?
                        .as_array()
                        .ok_or("a struct's fields must be a list")?;
                    Ok(DataType::Struct(
                        fields.iter().map(Field::from_json).collect::<Result<_, _>>()?,
                    ))
                }
                _ => Ok(DataType::Other(raw.clone())),
            },
            other => Err(format!("a type must be a name or an object, not {other}")),
        }
    }

    fn from_name(name: &str) -> Self {
        let decimal = name
            .strip_prefix("decimal(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|args| args.split_once(','))
            .and_then(|(p, s)| Some((p.trim().parse().ok()?, s.trim().parse().ok()?)));
        match decimal {
            Some((precision, scale)) => DataType::Decimal { precision, scale },
            None => DataType::Primitive(name.to_owned()),
        }
    }

    /// The schema JSON of this type (what [`DataType::from_json`] reads).
    pub fn to_json(&self) -> Value {
        match self {
            DataType::Primitive(name) => Value::String(name.clone()),
            DataType::Decimal { precision, scale } => Value::String(format!("decimal({precision},{scale})")),
            DataType::Array {
                element,
                contains_null,
            } => json!({"type": "array", "elementType": element.to_json(), "containsNull": contains_null}),
            DataType::Map {
                key,
                value,
                value_contains_null,
            } => json!({"type": "map", "keyType": key.to_json(), "valueType": value.to_json(),
                "valueContainsNull": value_contains_null}),
            DataType::Struct(fields) => {
                json!({"type": "struct", "fields": fields.iter().map(Field::to_json).collect::<Vec<_>>()})
            }
            DataType::Other(raw) => raw.clone(),
        }
    }

    /// The type as `/v1` names it: Delta's names, nested ones written `array<T>`,
    /// `map<K,V>` and `struct<name:T,...>`.
    pub fn delta_text(&self) -> String {
        self.text(&|name| name.to_owned())
    }

    /// The type as Spark's `catalogString` writes it, which Unity Catalog clients parse from
    /// `type_text`: `bigint`, `int`, `smallint`, `tinyint`, `decimal(10,2)`, `array<string>`,
    /// `map<string,bigint>`, `struct<a:int,b:string>`.
    pub fn spark_text(&self) -> String {
        self.text(&|name| {
            SPARK_NAMES
                .iter()
                .find(|(delta, _)| *delta == name)
                .map_or_else(|| name.to_owned(), |(_, spark)| (*spark).to_owned())
        })
    }

    fn text(&self, primitive: &dyn Fn(&str) -> String) -> String {
        match self {
            DataType::Primitive(name) => primitive(name),
            DataType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            DataType::Array { element, .. } => format!("array<{}>", element.text(primitive)),
            DataType::Map { key, value, .. } => {
                format!("map<{},{}>", key.text(primitive), value.text(primitive))
            }
            DataType::Struct(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}:{}", f.name, f.data_type.text(primitive)))
                    .collect();
                format!("struct<{}>", inner.join(","))
            }
            DataType::Other(raw) => raw
                .get("type")
                .and_then(Value::as_str)
                .map_or_else(|| raw.to_string(), str::to_owned),
        }
    }

    /// Unity Catalog's `type_name`; a type it has no name for is `USER_DEFINED_TYPE`.
    pub fn uc_type_name(&self) -> &'static str {
        match self {
            DataType::Primitive(name) => UC_NAMES
                .iter()
                .find(|(delta, _)| delta == name)
                .map_or("USER_DEFINED_TYPE", |(_, uc)| uc),
            DataType::Decimal { .. } => "DECIMAL",
            DataType::Array { .. } => "ARRAY",
            DataType::Map { .. } => "MAP",
            DataType::Struct(_) => "STRUCT",
            DataType::Other(_) => "USER_DEFINED_TYPE",
        }
    }

    /// Precision and scale for a decimal; zero for every other type (Unity Catalog clients
    /// read both as numbers on every column).
    pub fn precision_scale(&self) -> (u8, u8) {
        match self {
            DataType::Decimal { precision, scale } => (*precision, *scale),
            _ => (0, 0),
        }
    }
}

impl Field {
    /// Reads a field from its schema JSON (`{name, type, nullable, metadata}`).
    pub fn from_json(raw: &Value) -> Result<Self, String> {
        let object = raw.as_object().ok_or("a field must be an object")?;
        let name = member(object, "name")?
            .as_str()
            .ok_or("a field's name must be a string")?
            .to_owned();
        let data_type = DataType::from_json(member(object, "type")?).map_err(|e| format!("{name}: {e}"))?;
        let nullable = flag(object, "nullable").map_err(|e| format!("{name}: {e}"))?;
        let metadata = match object.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(format!("{name}: metadata must be an object, not {other}")),
        };
        Ok(Field {
            name,
            data_type,
            nullable,
            metadata,
        })
    }

    /// The field's schema JSON, as Spark's `StructField.json` writes it: Unity Catalog's
    /// `type_json`.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "type": self.data_type.to_json(), "nullable": self.nullable,
            "metadata": self.metadata})
    }

    /// The `comment` in the field's metadata, if any.
    pub fn comment(&self) -> Option<&str> {
        self.metadata.get("comment").and_then(Value::as_str)
    }
}

/// The fields of a schema's JSON (a struct type).
pub fn schema_fields(schema: &Value) -> Result<Vec<Field>, String> {
    match DataType::from_json(schema)? {
        DataType::Struct(fields) => Ok(fields),
        other => Err(format!("a schema must be a struct, not {}", other.delta_text())),
    }
}

fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    object.get(key).ok_or_else(|| format!("{key} is missing"))
}

fn flag(object: &Map<String, Value>, key: &str) -> Result<bool, String> {
    member(object, key)?
        .as_bool()
        .ok_or_else(|| format!("{key} must be true or false"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(raw: Value) -> DataType {
        DataType::from_json(&raw).expect("parses")
    }

    #[test]
    fn primitives_are_named_for_each_api() {
        // (Delta, Spark catalog string, Unity Catalog type name), from Spark's and Unity
        // Catalog's documentation.
        let cases = [
            ("long", "bigint", "LONG"),
            ("integer", "int", "INT"),
            ("short", "smallint", "SHORT"),
            ("byte", "tinyint", "BYTE"),
            ("string", "string", "STRING"),
            ("double", "double", "DOUBLE"),
            ("float", "float", "FLOAT"),
            ("boolean", "boolean", "BOOLEAN"),
            ("binary", "binary", "BINARY"),
            ("date", "date", "DATE"),
            ("timestamp", "timestamp", "TIMESTAMP"),
            ("timestamp_ntz", "timestamp_ntz", "TIMESTAMP_NTZ"),
        ];
        for (delta, spark, uc) in cases {
            let t = parse(json!(delta));
            assert_eq!(t.delta_text(), delta);
            assert_eq!(t.spark_text(), spark);
            assert_eq!(t.uc_type_name(), uc);
            assert_eq!(t.precision_scale(), (0, 0));
        }
        let d = parse(json!("decimal(10,2)"));
        assert_eq!(
            d,
            DataType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            (d.spark_text(), d.uc_type_name(), d.precision_scale()),
            ("decimal(10,2)".into(), "DECIMAL", (10, 2))
        );
    }

    #[test]
    fn nested_types_are_written_as_spark_writes_them() {
        let t = parse(json!({"type": "struct", "fields": [
            {"name": "a", "type": "integer", "nullable": true, "metadata": {}},
            {"name": "b", "type": {"type": "array", "elementType": "string", "containsNull": true}, "nullable": false, "metadata": {}},
            {"name": "m", "type": {"type": "map", "keyType": "string", "valueType": "long", "valueContainsNull": true}, "nullable": true, "metadata": {}},
        ]}));
        assert_eq!(
            t.spark_text(),
            "struct<a:int,b:array<string>,m:map<string,bigint>>"
        );
        assert_eq!(
            t.delta_text(),
            "struct<a:integer,b:array<string>,m:map<string,long>>"
        );
        assert_eq!(t.uc_type_name(), "STRUCT");
    }

    #[test]
    fn a_field_keeps_its_metadata_and_comment() {
        let raw = json!({"name": "id", "type": "long", "nullable": false, "metadata": {"comment": "the id"}});
        let f = Field::from_json(&raw).expect("field");
        assert_eq!(f.comment(), Some("the id"));
        assert_eq!(f.to_json(), raw);
    }

    #[test]
    fn unknown_types_are_kept_not_refused() {
        let udt = json!({"type": "udt", "class": "x.Point", "sqlType": "string"});
        let t = parse(udt.clone());
        assert_eq!(
            (t.uc_type_name(), t.delta_text(), t.to_json()),
            ("USER_DEFINED_TYPE", "udt".into(), udt)
        );
        assert_eq!(parse(json!("interval")).uc_type_name(), "USER_DEFINED_TYPE");
    }

    #[test]
    fn malformed_schemas_are_refused_with_the_reason() {
        let e = DataType::from_json(&json!({"type": "array", "elementType": "string"})).expect_err("no flag");
        assert!(e.contains("containsNull"), "{e}");
        let e =
            schema_fields(&json!({"type": "struct", "fields": [{"name": "x", "type": 3, "nullable": true}]}))
                .expect_err("bad type");
        assert!(e.starts_with("x:"), "{e}");
        assert!(schema_fields(&json!("long")).is_err());
    }

    fn leaf() -> impl Strategy<Value = DataType> {
        prop_oneof![
            prop::sample::select(vec![
                "long",
                "integer",
                "string",
                "timestamp_ntz",
                "binary",
                "date"
            ])
            .prop_map(|n| DataType::Primitive(n.to_owned())),
            (1u8..=38)
                .prop_flat_map(|p| (Just(p), 0..=p))
                .prop_map(|(precision, scale)| DataType::Decimal { precision, scale }),
        ]
    }

    fn any_type() -> impl Strategy<Value = DataType> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                (inner.clone(), any::<bool>()).prop_map(|(e, n)| DataType::Array {
                    element: Box::new(e),
                    contains_null: n
                }),
                (inner.clone(), inner.clone(), any::<bool>()).prop_map(|(k, v, n)| DataType::Map {
                    key: Box::new(k),
                    value: Box::new(v),
                    value_contains_null: n
                }),
                prop::collection::vec(("[a-z]{1,6}", inner, any::<bool>()), 1..4).prop_map(|fs| {
                    DataType::Struct(
                        fs.into_iter()
                            .map(|(name, data_type, nullable)| Field {
                                name,
                                data_type,
                                nullable,
                                metadata: Map::new(),
                            })
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_type_round_trips_through_its_json(t in any_type()) {
            prop_assert_eq!(DataType::from_json(&t.to_json()).expect("parses"), t);
        }
    }
}
