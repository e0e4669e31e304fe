"""Model code: preprocessing_fn, the hierarchical model, decoding, run_fn and export."""
