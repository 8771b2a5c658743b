"""astrocat's benchmark harness: ``python -m benchmarks.run --size quick|full|tiny``.

One run on one machine measures images, spectra and FITS throughput against the
seed-style pipelines and the component limits, peak memory of the process tree,
Dask scaling and start-up, profiles each stage, and writes ``benchmarks/RESULTS.md``.
Timings never enter the test suite; ``tests/test_benchmarks_smoke.py`` only runs the
harness at ``--size tiny`` so it cannot rot.
"""
