"""schemathesis hooks for lakeplane (loaded through SCHEMATHESIS_HOOKS by scripts/schemathesis).

Event pushes take NDJSON (`application/x-ndjson`), a text format schemathesis has no
serializer for: generated strings are sent as text, the way a client sends a file of lines.
Pushed Parquet and Avro files are binary bodies.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
# Pushed files (Parquet, Avro object containers) are bytes: generated ones are sent as they are
# (and refused with 422 naming the reader's reason).
schemathesis.serializer.alias("application/vnd.apache.parquet", "application/octet-stream")
schemathesis.serializer.alias("application/avro", "application/octet-stream")
