"""Code-switched titles: would training on titles whose words are swapped for their
translations teach the model to read other languages? Measured on frozen sentence
embeddings, where the answer is cheap.

    PYTHONPATH=. .venv/bin/python bench/code_switch.py --pipeline-root pipelines/fashion

Issue 19's languages target is about the multilingual sentence embedding: a title in
Spanish leaves the model little else. This bench asks whether the heads could learn a
language-neutral reading from English training data alone:

1. A lexicon from the sentence encoder itself: every whole-word piece of its SentencePiece
   vocabulary (Latin letters, 3 or more, not a train title word) embedded as a single word
   by the shared text encoder; each train title word's translations are its `--neighbours`
   nearest pieces with a cosine of at least `--threshold` (the word mapper's: "black" gets
   negro, schwarz, noir, preto ...).
2. Code-switched copies of the train titles: each word swapped, with chance p, for one of
   its translations at random; embedded.
3. Logistic-regression probes (bench/quality.py's, C fixed at `--c`) on the English train
   embeddings alone and with one switched copy (p 0.5, p 1.0), scored on the English
   **calibration** split, on a switched calibration copy (p 1.0, another seed: the stand-in
   the choice is made on), and on the hand-translated titles (eval: reported, not chosen on).
4. How far the encoder aligns languages: the cosine of each translated title with its
   English original, and the leaf of its nearest train title (1-NN), apart for the
   products whose English title is in the train split and those whose is not.
5. The root's trained model on the translated titles as `categorize` sends them (word-
   mapped) and with the title's n-grams removed (the sentence embedding kept), beside the
   same on the English calibration split (photos removed): what a gate that leans on the
   sentence embedding when few n-grams are known would have to lean on; and with the
   mapped title's embedding added to the title's where a word was mapped.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

_LATIN_WORD = re.compile(r"[a-zà-öø-ÿœß]{3,}")


def translations(train_words: Sequence[str], encoder, neighbours: int, threshold: float) -> dict[str, list[str]]:
    """{train title word: its nearest vocabulary words of other languages} (see the module)."""
    from schema.encoders import use_multilingual

    known = set(train_words)
    pieces = sorted({w.lower() for w in use_multilingual.load_tokenizer().vocabulary_words()})
    candidates = [w for w in pieces if _LATIN_WORD.fullmatch(w) and w not in known]
    c = _unit(encoder.encode(candidates))
    out = {}
    for start in range(0, len(train_words), 1024):
        chunk = train_words[start:start + 1024]
        sims = _unit(encoder.encode(chunk)) @ c.T
        for word, row in zip(chunk, sims):
            top = np.argsort(-row)[:neighbours]
            hits = [candidates[j] for j in top if row[j] >= threshold]
            if hits:
                out[word] = hits
    return out


def switched(texts: Sequence[str], lexicon: dict[str, list[str]], p: float, seed: int) -> list[str]:
    """Each text's words, each one with translations swapped for one of them with chance p."""
    from schema.encoders.word_mapper import words

    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(lexicon[w]) if w in lexicon and rng.random() < p else w for w in words(t))
            for t in texts]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline-root", type=Path, default=Path("pipelines/fashion"))
    parser.add_argument("--catalog", type=Path, default=Path("../shared/datasets/fashion"))
    parser.add_argument("--multilingual", type=Path, default=Path("../shared/datasets/multilingual"))
    parser.add_argument("--neighbours", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=None, help="default: the word mapper's")
    parser.add_argument("--c", type=float, default=0.1, help="the probes' C (bench/quality.py chooses 0.1 on calibration)")
    args = parser.parse_args(argv)

    from bench.quality import TrainedModel, embedding_probe, ensure_trained, read_split, text_blanked, without_photo
    from schema.catalog_reader import Product, read_catalog
    from schema.catalog_spec import load_spec
    from schema.encoders import get_text_encoder
    from schema.encoders.word_mapper import DEFAULT_THRESHOLD, mappable, words

    model_dir, examples_uri = ensure_trained("fashion", args.catalog, args.pipeline_root, 1)
    train, calib = read_split(examples_uri, "train"), read_split(examples_uri, "calibration")
    encoder = get_text_encoder()
    train_words = sorted({w for t in train.texts for w in words(t) if mappable(w)})
    lexicon = translations(train_words, encoder, args.neighbours,
                           DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    print(f"lexicon: {len(lexicon):,} of {len(train_words):,} train title words have translations; e.g. "
          + "; ".join(f"{w}: {', '.join(lexicon[w][:4])}" for w in ("black", "shoes", "women") if w in lexicon),
          flush=True)

    spec = load_spec("fashion")
    products = [p for p in read_catalog(args.multilingual / "products.csv", spec) if isinstance(p, Product)]
    langs = np.array([p.id.rsplit("-", 1)[-1] for p in products])
    truth = np.array([p.category_path for p in products])
    translated = encoder.encode([p.title for p in products])
    calib_switched = encoder.encode(switched(calib.texts, lexicon, 1.0, seed=99))

    print("| probe trained on | English calibration | switched calibration (p 1.0) | "
          + " | ".join(f"translated {lang} (eval)" for lang in sorted(set(langs))) + " |")
    print("|---|---|---|" + "---|" * len(set(langs)))
    for name, copies in (("English train titles", ()), ("+ a switched copy, p 0.5", ((0.5, 1),)),
                         ("+ a switched copy, p 1.0", ((1.0, 1),))):
        x, y = [train.text_emb], list(train.truth)
        for p, seed in copies:
            x.append(encoder.encode(switched(train.texts, lexicon, p, seed)))
            y += train.truth
        probe = embedding_probe(np.concatenate(x), y, args.c)
        on_translated = np.asarray(probe(translated)) == truth
        print(f"| {name} | {_accuracy(probe(calib.text_emb), calib.truth):.4f} | "
              f"{_accuracy(probe(calib_switched), calib.truth):.4f} | "
              + " | ".join(f"{on_translated[langs == lang].mean():.2f}" for lang in sorted(set(langs))) + " |",
              flush=True)

    english = {r.id: r.title for r in read_catalog(args.catalog / "products.csv", spec) if isinstance(r, Product)}
    originals = _unit(encoder.encode([english[p.id.rsplit("-", 1)[0]] for p in products]))
    translated_unit = _unit(translated)
    cosine = np.sum(translated_unit * originals, axis=1)
    sims = translated_unit @ _unit(train.text_emb).T
    train_truth = np.asarray(train.truth)
    nearest = train_truth[sims.argmax(axis=1)] == truth
    ten = np.argsort(-sims, axis=1)[:, :10]
    vote = np.array([Counter(train_truth[row]).most_common(1)[0][0] for row in ten]) == truth
    train_ids = set(train.ids)
    in_train = np.array([p.id.rsplit("-", 1)[0] in train_ids for p in products])
    print("\n| translated titles | products | cosine with the English title, mean (min) | 1-NN leaf | 10-NN vote |")
    print("|---|---|---|---|---|")
    for name, mask in (("English title in the train split", in_train), ("not in the train split", ~in_train)):
        print(f"| {name} | {mask.sum()} | {cosine[mask].mean():.3f} ({cosine[mask].min():.3f}) | "
              f"{nearest[mask].mean():.3f} | {vote[mask].mean():.3f} |")

    from schema.encoders import embed_examples
    from schema.product_example import product_to_example

    model = TrainedModel(model_dir)
    sent = embed_examples([product_to_example(p, spec, None) for p in products], None, model.word_mapper)
    calib_records = without_photo(calib.records)
    print("\n| the trained model | English calibration (photos removed) | "
          + " | ".join(f"translated {lang}" for lang in sorted(set(langs))) + " |")
    print("|---|---|" + "---|" * len(set(langs)))
    edits = (("as sent (word-mapped n-grams)", list), ("n-grams removed, sentence embedding kept", text_blanked),
             ("as sent, the mapped title's embedding added where a word was mapped",
              lambda examples: with_mapped_title_embedding(examples, encoder)))
    for name, edit in edits:
        on_translated = np.asarray(model.predict(edit(sent))) == truth
        print(f"| {name} | {_accuracy(model.predict(edit(calib_records)), calib.truth):.4f} | "
              + " | ".join(f"{on_translated[langs == lang].mean():.2f}" for lang in sorted(set(langs))) + " |")
    return 0


def with_mapped_title_embedding(examples: Sequence, encoder) -> list:
    """Where the word mapper replaced a word of the title (`title_mapped`), the text embedding
    becomes the normalised sum of the original's and that of the mapped title (with the
    description): the heads learned English titles' embeddings, and a translated title's
    sits nearer them with its words mapped. Elsewhere (every word known) unchanged."""
    import tensorflow as tf

    from schema import features
    from schema.encoders import set_float_feature
    from schema.encoders.word_mapper import words

    out, rows, texts = [], [], []
    for example in examples:
        new = tf.train.Example()
        new.CopyFrom(example)
        feats = new.features.feature
        title = feats[features.TITLE].bytes_list.value[0].decode() if feats[features.TITLE].bytes_list.value else ""
        mapped = feats[features.TITLE_MAPPED].bytes_list.value
        if mapped and mapped[0].decode().split() != words(title):
            description = (feats[features.DESCRIPTION].bytes_list.value or [b""])[0].decode().strip()
            rows.append(len(out))
            texts.append(" ".join(part for part in (mapped[0].decode(), description) if part))
        out.append(new)
    for k, extra in zip(rows, encoder.encode(texts) if texts else []):
        feature = out[k].features.feature[features.TEXT_EMBEDDING]
        both = np.asarray(feature.float_list.value, np.float32) + extra
        set_float_feature(feature, both / max(float(np.linalg.norm(both)), 1e-12))
    return out


if __name__ == "__main__":
    sys.exit(main())
