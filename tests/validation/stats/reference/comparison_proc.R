# Reference values for tests/validation/stats/test_comparison.py, computed once with
# R 4.2.2 and pROC 1.18.0 (Debian bookworm: apt-get install r-base-core r-cran-proc) on
# comparison_cases.csv (written by make_comparison_cases.py). Run from the repository root:
#   Rscript tests/validation/stats/reference/comparison_proc.R
suppressMessages(library(pROC))
cases <- read.csv("tests/validation/stats/reference/comparison_cases.csv")
paired <- cases[complete.cases(cases$baseline, cases$candidate), ]
cat("n_paired", nrow(paired), "n_pos", sum(paired$label), "\n")

show <- function(tag, d) {
  r1 <- roc(d$label, d$candidate, levels = c(0, 1), direction = "<", quiet = TRUE)
  r0 <- roc(d$label, d$baseline, levels = c(0, 1), direction = "<", quiet = TRUE)
  t <- roc.test(r1, r0, paired = TRUE, method = "delong")
  cat(sprintf("%s auc_candidate %.15g auc_baseline %.15g\n", tag, auc(r1), auc(r0)))
  cat(sprintf("%s z %.15g p %.15g ci %.15g %.15g\n", tag, t$statistic, t$p.value,
              t$conf.int[1], t$conf.int[2]))
  ci0 <- ci.auc(r0, method = "delong")
  cat(sprintf("%s baseline_ci %.15g %.15g\n", tag, ci0[1], ci0[3]))
}
show("all", paired)
show("north", paired[paired$site == "north", ])

# Decisions at threshold 0.5 (baseline) and 0.6 (candidate): score >= threshold is positive.
for (label in c(1, 0)) {
  d <- paired[paired$label == label, ]
  right0 <- (d$baseline >= 0.5) == (label == 1)
  right1 <- (d$candidate >= 0.6) == (label == 1)
  b <- sum(right0 & !right1)
  c <- sum(!right0 & right1)
  tab <- matrix(c(sum(right0 & right1), c, b, sum(!right0 & !right1)), 2)
  m <- mcnemar.test(tab)
  cat(sprintf("label %d both %d baseline_only %d candidate_only %d neither %d\n", label,
              tab[1, 1], b, c, tab[2, 2]))
  cat(sprintf("label %d mcnemar %.15g p %.15g exact_p %.15g\n", label, m$statistic,
              m$p.value, binom.test(min(b, c), b + c)$p.value))
}
