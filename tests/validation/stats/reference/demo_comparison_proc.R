# Reference values for tests/validation/stats/test_demo_comparison_proc.py, computed once with
# R 4.2.2 and pROC 1.18.0 (Debian bookworm: apt-get install r-base-core r-cran-proc) on
# demo_comparison_scores.csv: the paired scores of `manage.py demo --compare` (seed 7, 240
# cases; exported with --export-scores: label, then LesionFinder 1.0.0's and 1.1.0's score per
# case in case order, empty where a version failed on the case). Run from the repository root:
#   Rscript tests/validation/stats/reference/demo_comparison_proc.R
suppressMessages(library(pROC))
cat("R", R.version$major, R.version$minor, "pROC", as.character(packageVersion("pROC")), "\n")
cases <- read.csv("tests/validation/stats/reference/demo_comparison_scores.csv")
paired <- cases[complete.cases(cases$baseline, cases$candidate), ]
cat("n_paired", nrow(paired), "n_pos", sum(paired$label), "\n")
r1 <- roc(paired$label, paired$candidate, levels = c(0, 1), direction = "<", quiet = TRUE)
r0 <- roc(paired$label, paired$baseline, levels = c(0, 1), direction = "<", quiet = TRUE)
t <- roc.test(r1, r0, paired = TRUE, method = "delong")
cat(sprintf("auc_candidate %.15g auc_baseline %.15g\n", auc(r1), auc(r0)))
cat(sprintf("z %.15g p %.15g\n", t$statistic, t$p.value))
cat(sprintf("difference_ci %.15g %.15g\n", t$conf.int[1], t$conf.int[2]))
