"""evactors benchmarks: see docs/benchmarks.md and `bash bench/run --help`."""
