"""Context-free baselines on the synthetic corpus's test split: `python benchmarks/baselines.py [--seed 0]`.

They set the floor a sequence model must clear. Sentiment: the majority class, and a bag-of-words logistic
regression (word counts, no order), which negation and contrast are designed to defeat. Tagging: the most
frequent tag, and each word's most frequent tag in training, which ambiguous words like "that" defeat.
Prints one JSON line per baseline, then a table.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import torch

from seqmodels.data.synthetic import load_synthetic_corpus


def accuracy(predictions: list, targets: list) -> float:
    return sum(p == t for p, t in zip(predictions, targets)) / len(targets)


def majority_label(train, test) -> float:
    majority = Counter(train["label"]).most_common(1)[0][0]
    return accuracy([majority] * len(test), test["label"])


def bag_of_words(train, validation, test, epochs: int = 300, lr: float = 0.05, seed: int = 0) -> float:
    """Full-batch logistic regression over word counts; test accuracy at the best validation epoch."""
    torch.manual_seed(seed)
    words = {w: i for i, w in enumerate(sorted({w for s in train["tokens"] for w in s}))}
    labels = sorted(set(train["label"]))

    def featurize(split) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.zeros(len(split), len(words))
        for row, sentence in enumerate(split["tokens"]):
            for w in sentence:
                if w in words:  # words unseen in training carry no weight
                    x[row, words[w]] += 1
        return x, torch.tensor([labels.index(label) for label in split["label"]])

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(featurize, (train, validation, test))
    model = torch.nn.Linear(len(words), len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best_val, best_test = -1.0, 0.0
    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x_train), y_train).backward()
        optimizer.step()
        with torch.no_grad():
            val = (model(x_val).argmax(-1) == y_val).float().mean().item()
            if val > best_val:
                best_val, best_test = val, (model(x_test).argmax(-1) == y_test).float().mean().item()
    return best_test


def majority_tag(train, test) -> float:
    majority = Counter(t for s in train["tags"] for t in s).most_common(1)[0][0]
    gold = [t for s in test["tags"] for t in s]
    return accuracy([majority] * len(gold), gold)


def per_word_tag(train, test) -> float:
    """Each word gets its most frequent training tag; unknown words get the overall most frequent tag."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for sentence, tags in zip(train["tokens"], train["tags"]):
        for w, t in zip(sentence, tags):
            counts[w][t] += 1
    fallback = Counter(t for c in counts.values() for t in c.elements()).most_common(1)[0][0]
    predictions = [counts[w].most_common(1)[0][0] if w in counts else fallback for s in test["tokens"] for w in s]
    return accuracy(predictions, [t for s in test["tags"] for t in s])


def corpus_stats(corpus) -> dict:
    sentences = [s for split in corpus.values() for s in split["tokens"]]
    tags = {t for split in corpus.values() for s in split["tags"] for t in s}
    return {
        "sentences": {name: len(split) for name, split in corpus.items()},
        "mean_length": round(sum(map(len, sentences)) / len(sentences), 2),
        "vocab_size": len({w for s in sentences for w in s}),
        "num_tags": len(tags),
        "positive_share": {name: round(split["label"].count("positive") / len(split), 3)
                           for name, split in corpus.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--cache-dir", default=str(Path(__file__).resolve().parents[1] / "data" / "cache"))
    args = parser.parse_args()

    corpus = load_synthetic_corpus(seed=args.seed, cache_dir=args.cache_dir)
    train, validation, test = corpus["train"], corpus["validation"], corpus["test"]
    print(json.dumps({"corpus": corpus_stats(corpus)}))
    results = [
        ("sentiment", "majority class", majority_label(train, test)),
        ("sentiment", "bag-of-words logistic regression", bag_of_words(train, validation, test, seed=args.seed)),
        ("tagging", "most frequent tag", majority_tag(train, test)),
        ("tagging", "most frequent tag per word", per_word_tag(train, test)),
    ]
    for task, baseline, acc in results:
        print(json.dumps({"task": task, "baseline": baseline, "split": "test", "accuracy": round(acc, 4)}))
    print(f"\n{'task':<10} {'baseline':<34} {'test accuracy':>13}")
    for task, baseline, acc in results:
        print(f"{task:<10} {baseline:<34} {acc:>13.1%}")


if __name__ == "__main__":
    main()
