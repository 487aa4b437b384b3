"""The GDB adapter: the only package that imports `gdb`. It feeds core's table and renders core's reports."""
