"""The stable names of the validation app's Celery tasks.

A queued message names its task; a task's name must not change when its code moves, or messages
already in the broker are stranded. Each task declares its name from here, and services queue
work by these names (`config.celery.enqueue_on_commit`) rather than by importing the tasks,
which are the top layer and call the services. The values are the module-derived names the tasks
had before they were declared, so messages queued by earlier versions still find them; a rename
is a change to this file and to `tests/test_celery.py`, reviewed as such.
"""

RUN_INFER = "validation.tasks.run_infer"
RUN_SHARD = "validation.tasks.run_shard"
RUN_SCORE = "validation.tasks.run_score"
RUN_EXPLAIN = "validation.tasks.run_explain"
RUN_REPORT = "validation.tasks.run_report"
COMPARISON_SCORE = "validation.tasks.comparison_score"
DATASET_IMPORT = "validation.tasks.dataset_import"
REPORT_ISSUE = "reports.tasks.report_issue"
REPORT_PAGES = "reports.tasks.report_pages_make"
PACKAGE_SMOKE_TEST = "validation.tasks.package_smoke_test"
