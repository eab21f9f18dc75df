"""Fitting and choosing the local model's steering: the learned bias (``fitting``), its plots
(``plots``), scoring candidate methods on train-split data (``select``) and profiling PASTA's
heads (``pasta``, ``profiling``). ``salience model …`` runs them; the runtime (loading,
prompts, methods, the bias, steering, batching) never imports this package, and the service does
not load it.
"""
