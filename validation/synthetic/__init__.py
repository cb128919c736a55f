"""Synthetic data the project builds itself, without Django: DX/CR cohorts with sites, scanners,
demographics, lesions and a controllable subgroup shift (`cohort`), and the reference vendor
model trained on them (`reference_model`). Used by the demo, the tests and the benchmarks."""
