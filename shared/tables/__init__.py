"""Table exports (SPEC 13): samples, items and places as CSV, TSV, JSON, JSON Lines, XLSX.

`columns` says what each table holds (derived from `shared.fields`), `params` what a
request asks, `sql` how PostgreSQL formats the values, one module per format writes the
file (`delimited`, `jsonfmt`, `xlsx`), `export` is the `export.table` pipeline and
`inline` the small exports answered straight from the web process.
"""
