"""Embedder: adds multilingual text and image embeddings to Examples (see encoders.py)."""
