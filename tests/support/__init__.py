"""What tests and benchmarks share that production code never uses: a sample report document
and a fleet of real Celery worker processes."""
