"""The harness: owns the training loop, the clock, evaluation, checkpoints and records."""
