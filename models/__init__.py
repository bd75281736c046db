"""Model code: one interface (fit, predict, save, load) and one module per prediction domain."""
