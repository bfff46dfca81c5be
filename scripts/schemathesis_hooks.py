"""schemathesis hooks for lakeplane (loaded through SCHEMATHESIS_HOOKS by scripts/schemathesis).

Event pushes take NDJSON (`application/x-ndjson`), a text format schemathesis has no
serializer for: generated strings are sent as text, the way a client sends a file of lines.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
