"""Pure-Python heart of gdb-memleak: never imports `gdb`, so it is unit-testable with plain pytest."""
