"""Sweeps: a matrix of runs from a TOML file (`sweepfile`), executed in this process, as local
jobs in fresh processes (`local`) or as a SLURM job array through submitit (`slurm`), followed
and resumed through the records and small state files (`state`, `driver`)."""
