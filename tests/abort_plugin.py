"""Test only: aborts the process that imports it, as a native crash outside any decoder would.

Loaded by the window's indexing process through its test hook (`GLIMPSE_TEST_DECODER_PLUGIN=abort_plugin`)."""
import os

try:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a crash made on purpose
except (ImportError, ValueError, OSError):
    pass
os.abort()
