"""The batch front end: `gdb-memleak PROG` runs PROG under GDB with the plugin and reports like valgrind."""
