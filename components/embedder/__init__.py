"""Embedder: adds multilingual text and image embeddings to Examples with the encoders of
schema/encoders/ (the TFX component and its Beam executor only)."""
