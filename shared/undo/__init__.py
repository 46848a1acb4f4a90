"""Import undo (SPEC 13): what an import records so it can be rolled back, and the
rollback itself."""
