#!/usr/bin/env bash
# Regenerate glue/<table>.json and athena/<table>.sql from schemas/.
set -euo pipefail
bin=${1:?usage: sync-catalog-files.sh PATH/TO/lakehose}
cd "$(dirname "$0")/.."
mkdir -p glue athena
for t in $("$bin" schema list --schemas schemas | cut -f1); do
  "$bin" schema glue "$t" --schemas schemas > "glue/$t.json"
  "$bin" schema ddl "$t" --schemas schemas > "athena/$t.sql"
done
