"""Tests of the benchmark package (pure parts; the runs themselves are `make bench`)."""
