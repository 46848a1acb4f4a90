"""The Arc apps' side of the archive format, written from LocoKit2's Swift source.

github.com/sobri909/LocoKit2 at commit 68c0a86, `Sources/LocoKit2`: the model structs and
their Codable conformance, `ImportExport/`, `Extensions/JSONEncoderDecoder+LocoKit.swift`,
`Extensions/Data+Compression.swift` and `Database/Database+Schema.swift`. Nothing here is
taken from Ferry's own code, so a mistake Ferry's writer and reader share cannot hide.

- `swift`: what each struct decodes (required and optional keys, their types, the enums),
  and how Swift's JSONDecoder and the apps' date decoder treat a JSON value.
- `conformance`: reads an archive folder the way the apps' ImportManager does and reports
  every record they would lose (file, index, reason).
- `app_export`: writes an archive the way the apps' ExportManager does, full or as an
  incremental backup update, from a timeline of app records.
"""
