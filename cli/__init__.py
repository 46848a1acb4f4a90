"""The `ferry` command line: operators' and scripts' entrypoint (imports web and worker)."""
