"""Reports of runs and sweeps: `python -m resnet_exp.report <sweep dir | run dir>`.

Every run folder gets `curves.png` (`curves.py`: loss and accuracy per epoch, the learning rate
at each logged step, a step-time histogram) when the run ends; the summary block a run, an eval or a sweep prints is `summary.py`.

The report reads every job folder of a Hydra multirun folder (a sub-folder holding `.hydra/`, and
`results.json` once the job finished) into rows (`rows.py`) and writes into the sweep folder:

    summary.csv                 one row per job, raw numbers (accuracies as fractions)
    summary.md                  the same as a Markdown table (accuracies in %), then the groups
                                and comparisons tables of a sweep with seeds
    groups.csv                  one row per configuration (jobs that differ only in `seed`): n, and
                                per metric mean, sd and the 95% t interval of the mean
    comparisons.csv             each pair of values of each swept key, the other keys held equal:
                                mean difference, 95% interval, p (paired by seed, else Welch)
    accuracy_vs_depth.png       test and best validation accuracy (two panels), mean with 95%
                                interval bars, one line per configuration other than depth (one
                                depth: the configurations side by side)
    step_time_vs_depth.png      median training step time, the same way
    time_to_accuracy.png        validation accuracy vs cumulative training time, one line per
                                configuration (mean over seeds, band: lowest to highest seed)

A job without `results.json` is `failed` when it left an error behind (`job_status.json` written
by the sweep callback, or a traceback in its log) and `interrupted` otherwise. The same report is
built after every job of a multirun by `app.hydra_callbacks.SweepReport`. The file names below are the package's
own: nothing else writes or names them.
"""

SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
GROUPS_CSV, COMPARISONS_CSV = "groups.csv", "comparisons.csv"
ACCURACY_PNG, STEP_TIME_PNG = "accuracy_vs_depth.png", "step_time_vs_depth.png"
TIME_TO_ACCURACY_PNG = "time_to_accuracy.png"
# In a run folder.
CURVES_PNG = "curves.png"
# Written by the sweep callback into a job folder when the job raised (the folder may hold only it).
JOB_STATUS_FILE = "job_status.json"
