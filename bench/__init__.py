"""The benchmark harness: workload files, offline engine replay, and the server replay."""
