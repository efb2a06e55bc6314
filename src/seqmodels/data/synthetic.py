"""The embedded default corpus: seeded synthetic English-like sentences with POS tags and a sentiment label.

Everything is generated here from a small invented lexicon (about 250 word types); nothing comes from a real
corpus. A sentence is one or two *evaluative clauses* ("the plot was dull", "i loved that score", "the cast plays
well", "we had a great time"), optionally inside an opinion frame, after a neutral opener or before a closer::

    [opener ,] [i (do n't) think [that]] CLAUSE [and | but | yet CLAUSE] [, so i ...] .
    although CLAUSE , CLAUSE .        CLAUSE , although CLAUSE .

The label ("negative"/"positive") is a deterministic function of the sentence, built so that order matters:

* negation ("not", "n't", "never", and "i do n't think ..." around a whole clause) flips a clause's polarity,
  so to a bag of words "good" + "not" is an XOR it cannot represent;
* contrast overrides: in "A but B" / "A yet B" the label follows B; with "although" it follows the main clause,
  which comes first or second depending on where "although" sits. Contrasted clauses have opposite polarities,
  so a bag of words sees one of each and must guess; "A and B" joins clauses of the same polarity.

A bag-of-words classifier therefore gets only about 60% right, while a model that reads the sentence in order
can be exact (see benchmarks/baselines.py). Tags are UD UPOS, and many depend on the word to the RIGHT, which a
left-to-right tagger has not yet read:

* "that": DET before a noun ("that plot was dull"), PRON before a verb or auxiliary ("that was dull"), SCONJ
  after "think" when a clause follows ("i think that the plot ..."); "this": DET before a noun, else PRON;
* "-s" words after a noun: "the film plays well" (VERB) vs "the film plays were dull" (NOUN, a compound),
  likewise works, acts, scores and looks;
* "'s": PART before a noun ("the film 's score was great") vs AUX otherwise ("the film 's great");
* "had" / "did": VERB before a noun phrase ("we had a great time") vs AUX before a verb or negation
  ("i had never liked it", "the cast did n't do a good job");
* "after" / "before" / "since": ADP before a noun phrase ("after the show ,") vs SCONJ when a verb follows
  that noun phrase ("after the show ended ,"), decided two or three words later;
* "up" / "off" / "out": ADP when a noun phrase follows ("when we turned off the lights ,") vs ADV, a particle,
  when none does ("when we turned off ,");
* "one": PRON before "of" ("one of the scenes"), NUM before a noun ("one scene", "for one hour");
* "pretty": ADV before an adjective ("pretty dull"), ADJ before a noun ("the pretty costumes").

Others are decided on the left: the nouns plot, score, cast, set, show, play, work, look, act are VERB after
"does n't" or a plural subject ("the actors look great"); "like" is VERB after a subject and ADP after a
linking verb ("it feels like a mess"); "so" is ADV before an adjective and SCONJ after a comma.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import datasets

LABELS = ("negative", "positive")
NEGATION_RATE = 0.25  # share of clauses that are negated
FEATURES = datasets.Features({
    "tokens": datasets.List(datasets.Value("string")),
    "tags": datasets.List(datasets.Value("string")),
    "label": datasets.Value("string"),
})

Tagged = list[tuple[str, str]]  # (token, tag) pairs

# Sentiment-bearing words, keyed by lexical polarity (True = positive).
ADJ = {
    True: "good great brilliant wonderful superb moving charming clever fresh funny gripping lovely solid delightful "
    "excellent stunning smart engaging touching witty tender vivid bold elegant thrilling".split(),
    False: "bad awful dull boring terrible weak clumsy flat bland tedious messy silly stale poor lifeless dreadful "
    "shallow predictable forgettable painful hollow sloppy cheap muddled tiresome".split(),
}
PRAISE = {True: "gem masterpiece triumph delight treat joy marvel".split(),
          False: "mess disaster bore letdown chore failure flop".split()}
MANNER = {True: "well beautifully brilliantly superbly nicely".split(),
          False: "badly poorly awkwardly clumsily terribly".split()}
FEEL = {  # (past, base) of regular verbs, so the past form doubles as the participle ("had never loved")
    True: [("loved", "love"), ("enjoyed", "enjoy"), ("liked", "like"), ("admired", "admire"), ("adored", "adore")],
    False: [("hated", "hate"), ("disliked", "dislike"), ("loathed", "loathe"), ("despised", "despise"),
            ("resented", "resent")],
}
# Sentiment-neutral words.
AMBIGUOUS = "plot score cast set show play work look act".split()  # nouns that are also verbs
NOUNS = AMBIGUOUS + ("story film movie script ending dialogue pacing music soundtrack direction acting humor lead "
                     "villain finale premise sequel editing camera heroine narration").split()
PLURALS = "scenes actors jokes characters effects songs twists costumes visuals performances stunts lines".split()
ATTRIBUTES = "new old main final pretty big".split()  # "pretty" is also an intensifier
MODIFIERS = "film movie stage tv".split()
HEADS = "shows sets plays scores works acts casts plots looks".split()  # plural nouns, some also verbs (below)
MANNER_VERBS = [("plays", "play"), ("works", "work"), ("acts", "act"), ("scores", "score")]  # + a MANNER adverb
LINK_VERBS = [("looks", "look"), ("feels", "feel"), ("sounds", "sound"), ("seems", "seem")]  # + an adjective
NAMES = "mavrin tolla quennet borsk ilvane dareth sunnel okari vessa grunholt".split()  # invented
INTENSIFIERS = "so so very really quite truly pretty pretty".split()  # repeats are drawn more often
NOT = ("not", "n't")
EVENTS = ["show", "film", "trailer", "credits", "premiere", "intermission", "first act", "last act"]
PHRASAL = [("turned", "off"), ("switched", "off"), ("shut", "off"), ("looked", "up"), ("set", "up"),
           ("checked", "out"), ("sorted", "out")]
THINGS = ["the lights", "the phones", "the volume", "the reviews", "the cast", "the screen"]
NP_KINDS = {"det": 6, "possessive": 2, "plural": 2, "compound": 3, "one of": 2, "one": 2, "name": 2, "modifier": 3,
            "pronoun": 2}  # relative frequencies


def _t(words: str, tags: str) -> Tagged:
    """``_t("the plot", "DET NOUN")`` -> ``[("the", "DET"), ("plot", "NOUN")]``."""
    words_, tags_ = words.split(), tags.split()
    assert len(words_) == len(tags_), (words, tags)
    return list(zip(words_, tags_))


def _a(noun_phrase: str) -> Tagged:
    """The indefinite article for ``noun_phrase``."""
    return _t("an" if noun_phrase[0] in "aeiou" else "a", "DET")


def _noun_phrase(rng: random.Random, plural: bool | None = None) -> tuple[Tagged, bool]:
    """A noun phrase usable as subject or object, and whether it is plural (``plural`` forces one or the other)."""
    kind = rng.choices(list(NP_KINDS), weights=NP_KINDS.values())[0]
    while plural is not None and plural != (kind in ("plural", "compound")):
        kind = rng.choices(list(NP_KINDS), weights=NP_KINDS.values())[0]
    attribute = _t(rng.choice(ATTRIBUTES), "ADJ") if rng.random() < 0.2 else []
    noun = _t(rng.choice(AMBIGUOUS if rng.random() < 0.5 else NOUNS), "NOUN")
    modifier = _t(f"the {rng.choice(MODIFIERS)}", "DET NOUN")
    if kind == "det":  # that plot
        return _t(rng.choice(("the", "this", "that")), "DET") + attribute + noun, False
    if kind == "possessive":  # mavrin 's score, the film 's score
        return (_t(rng.choice(NAMES), "PROPN") if rng.random() < 0.5 else modifier) + _t("'s", "PART") + noun, False
    if kind == "plural":
        return _t("the", "DET") + attribute + _t(rng.choice(PLURALS), "NOUN"), True
    if kind == "compound":  # the film plays -- a head that is also a verb
        return modifier + _t(rng.choice(HEADS), "NOUN"), True
    if kind == "one of":
        return _t(f"one of the {rng.choice(PLURALS)}", "PRON ADP DET NOUN"), False
    if kind == "one":
        return _t("one", "NUM") + noun, False
    if kind == "name":
        return _t(rng.choice(NAMES), "PROPN"), False
    if kind == "modifier":  # the film -- before a verb that is also a noun ("the film plays well")
        return modifier, False
    return _t(rng.choice(("it", "that", "this")), "PRON"), False


def _intensified(rng: random.Random, adjective: str) -> Tagged:
    """``adjective``, sometimes after an intensifier ("so dull")."""
    return (_t(rng.choice(INTENSIFIERS), "ADV") if rng.random() < 0.4 else []) + _t(adjective, "ADJ")


def _clause(rng: random.Random, positive: bool) -> Tagged:
    """An evaluative clause whose overall polarity is ``positive``; negation flips the sentiment word's polarity."""
    negated = rng.random() < NEGATION_RATE
    lexical = positive != negated  # the polarity of the sentiment word itself
    frame = rng.choices(("copula", "feel", "have", "manner", "link"), weights=(5, 4, 2, 2, 2))[0]
    if frame == "copula":  # the plot was (not) (so) dull / it 's not a gem
        subject, plural = _noun_phrase(rng)
        contractable = subject[-1][0] != "this" and ("'s", "PART") not in subject
        aux = rng.choice(("are", "were") if plural else ("is", "was", "'s", "'s") if contractable else ("is", "was"))
        out = subject + _t(aux, "AUX")
        if negated:
            out += rng.choice([_t("not", "PART"), _t("never", "ADV")] + ([_t("n't", "PART")] if aux != "'s" else []))
        if plural or rng.random() < 0.75:
            return out + _intensified(rng, rng.choice(ADJ[lexical]))
        noun = rng.choice(PRAISE[lexical])
        return out + _a(noun) + _t(noun, "NOUN")
    if frame == "feel":  # i (did n't) love(d) that score
        past, base = rng.choice(FEEL[lexical])
        if negated and rng.random() < 0.5:
            verb = rng.choice([_t(f"did {rng.choice(NOT)} {base}", "AUX PART VERB"), _t(f"never {past}", "ADV VERB"),
                               _t(f"had never {past}", "AUX ADV VERB")])
        elif negated:
            verb = _t(f"do {rng.choice(NOT)} {base}", "AUX PART VERB")
        else:
            verb = rng.choice([_t(past, "VERB"), _t(f"had {past}", "AUX VERB"), _t(base, "VERB"), _t(base, "VERB")])
            verb = (_t("really", "ADV") if rng.random() < 0.3 else []) + verb
        obj = _noun_phrase(rng)[0] if rng.random() < 0.8 else _t(rng.choice(("it", "that", "this")), "PRON")
        return _t(rng.choice(("i", "we", "they")), "PRON") + verb + obj
    if frame == "have":  # we had a great time / the cast did n't do a good job
        adj = rng.choice(ADJ[lexical])
        if rng.random() < 0.5:
            subject, past, base, noun = _t(rng.choice(("i", "we")), "PRON"), "had", "have", "time"
        else:
            subject, past, base, noun = _noun_phrase(rng)[0], "did", "do", "job"
        verb = _t(f"did {rng.choice(NOT)} {base}", "AUX PART VERB") if negated else _t(past, "VERB")
        return subject + verb + _a(adj) + _t(f"{adj} {noun}", "ADJ NOUN")
    # manner: the cast plays well / link: the actors do n't look good, it feels like a mess
    subject, plural = _noun_phrase(rng)
    verb_s, base = rng.choice(MANNER_VERBS if frame == "manner" else LINK_VERBS)
    verb, do = (base, "do") if plural else (verb_s, "does")
    if negated:
        verb = rng.choice([_t(f"{do} {rng.choice(NOT)} {base}", "AUX PART VERB"), _t(f"never {verb}", "ADV VERB")])
    else:
        verb = _t(verb, "VERB")
    if frame == "manner":
        return subject + verb + _t(rng.choice(MANNER[lexical]), "ADV")
    if rng.random() < 0.3:
        noun = rng.choice(PRAISE[lexical])
        return subject + verb + _t("like", "ADP") + _a(noun) + _t(noun, "NOUN")
    return subject + verb + _intensified(rng, rng.choice(ADJ[lexical]))


def _opener(rng: random.Random) -> Tagged:
    """A sentiment-neutral adverbial that opens the sentence, with its comma."""
    kind = rng.choices(("event", "phrasal", "duration", "adverb"), weights=(3, 2, 1, 1))[0]
    if kind == "event":  # after the show , / after the show ended ,
        event = rng.choice(EVENTS)
        clause = rng.random() < 0.5
        out = _t(rng.choice(("after", "before", "since")), "SCONJ" if clause else "ADP")
        out += _t(f"the {event}", "DET ADJ NOUN" if " " in event else "DET NOUN")
        out += _t(rng.choice(("ended", "started", "began", "finished")), "VERB") if clause else []
    elif kind == "phrasal":  # when we turned off the lights , / when we turned off ,
        verb, particle = rng.choice(PHRASAL)
        out = _t(f"when {rng.choice(('i', 'we'))} {verb}", "SCONJ PRON VERB")
        out += _t(f"{particle} {rng.choice(THINGS)}", "ADP DET NOUN") if rng.random() < 0.5 else _t(particle, "ADV")
    elif kind == "duration":  # after two hours , / for one hour ,
        number = rng.choice(("one", "two", "three", "four"))
        out = _t(f"{rng.choice(('after', 'for'))} {number} {'hour' if number == 'one' else 'hours'}", "ADP NUM NOUN")
    else:
        out = rng.choice([_t("honestly", "ADV"), _t("overall", "ADV"), _t("frankly", "ADV"),
                          _t("in the end", "ADP DET NOUN")])
    return out + _t(",", "PUNCT")


def generate_sentence(rng: random.Random) -> tuple[list[str], list[str], str]:
    """One sentence as ``(tokens, tags, label)``; the label is a deterministic function of the tokens."""
    positive = rng.random() < 0.5
    form = rng.choices(("single", "and", "but", "although"), weights=(6, 2, 2, 1.5))[0]
    out = _opener(rng) if form != "although" and rng.random() < 0.4 else []
    if form == "single" and rng.random() < 0.25:  # an opinion frame; a negated one flips the clause
        flip = rng.random() < 0.5
        frames = ([_t("i do n't think", "PRON AUX PART VERB"), _t("i did n't think", "PRON AUX PART VERB"),
                   _t("i never thought", "PRON ADV VERB")] if flip else
                  [_t("i think", "PRON VERB"), _t("i thought", "PRON VERB"), _t("i felt", "PRON VERB")])
        out += rng.choice(frames) + (_t("that", "SCONJ") if rng.random() < 0.5 else [])
        out += _clause(rng, positive != flip)
    elif form == "single":
        out += _clause(rng, positive)
    elif form == "and":  # both clauses agree
        out += _clause(rng, positive) + rng.choice([_t("and", "CCONJ"), _t(", and", "PUNCT CCONJ")])
        out += _clause(rng, positive)
    elif form == "but":  # the second clause wins
        out += _clause(rng, not positive) + rng.choice([_t("but", "CCONJ"), _t(", but", "PUNCT CCONJ"),
                                                        _t("yet", "CCONJ")])
        out += _clause(rng, positive)
    else:  # the main clause wins, wherever "although" puts it
        concession = _t(rng.choice(("although", "though")), "SCONJ") + _clause(rng, not positive)
        main = _clause(rng, positive)
        out += concession + _t(",", "PUNCT") + main if rng.random() < 0.5 else main + _t(",", "PUNCT") + concession
    if form != "although" and rng.random() < 0.15:
        out += _t(", so", "PUNCT SCONJ") + rng.choice([_t("i told my friends", "PRON VERB DET NOUN"),
                                                       _t("i wrote this", "PRON VERB PRON"),
                                                       _t("we went home", "PRON VERB ADV")])
    out += _t(rng.choice((".", ".", ".", "!")), "PUNCT")
    return [token for token, _ in out], [tag for _, tag in out], LABELS[positive]


def synthetic_examples(num_sentences: int, seed: int) -> Iterator[dict]:
    """Yield ``num_sentences`` examples ``{"tokens", "tags", "label"}``, deterministically from ``seed``."""
    rng = random.Random(seed)
    for _ in range(num_sentences):
        tokens, tags, label = generate_sentence(rng)
        yield {"tokens": tokens, "tags": tags, "label": label}


def split_seed(seed: int, split: str) -> int:
    """The seed of one split, derived from the corpus seed (the same in every Python process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{split}".encode()).digest()[:8], "big")


def load_synthetic_corpus(
    train_size: int = 4000, val_size: int = 500, test_size: int = 500, seed: int = 0, cache_dir: str | None = None
) -> datasets.DatasetDict:
    """The corpus as a ``DatasetDict`` with splits ``train``, ``validation`` and ``test``, cached by ``datasets``.

    A later call with the same sizes and seed loads the Arrow files that the first one wrote under ``cache_dir``
    (``datasets``' default cache when None). The cache key includes this file's source, so editing the grammar
    regenerates the corpus instead of loading a stale one.
    """
    source = Path(__file__).read_bytes()
    splits = {}
    for split, size in {"train": train_size, "validation": val_size, "test": test_size}.items():
        kwargs = {"num_sentences": size, "seed": split_seed(seed, split)}
        splits[split] = datasets.Dataset.from_generator(
            synthetic_examples,
            features=FEATURES,
            gen_kwargs=kwargs,
            cache_dir=cache_dir,
            split=datasets.NamedSplit(split),
            fingerprint=hashlib.sha256(source + repr((split, kwargs)).encode()).hexdigest()[:16],
        )
    return datasets.DatasetDict(splits)
