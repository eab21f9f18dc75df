"""salience.evals: does a marked rule survive a long, distracting prompt? Verifiable constraint
families, tasks with quality checks, and the train/test split."""
