"""Estimators, model specs and row builders: DataFrame in, DataFrame out, never a connection; one interface (fit, predict, save, load; fitted state ends in ``_``)."""
