"""Pre-training and held-out text as documents of sentences.

A corpus is a ``datasets.Dataset`` with one row per document and one column, ``sentences`` (a list of
strings).  Keeping document boundaries lets :func:`atb.data.build_pretraining_examples` pack
consecutive sentences of one document without ever gluing two unrelated texts together.

Corpora (``load_corpus(name)``):

* ``"pretrain"`` — offline, the ~76 MB mix of ``$ATB_DATA_DIR/corpus``: the English Wikipedia sample,
  the Wikipedia articles of SQuAD v1.1 train and 13 Project Gutenberg books (a BookCorpus stand-in),
  in that order.  On the hub: English Wikipedia (``wikimedia/wikipedia``, ``20231101.en``).
* ``"wikitext-2-valid"`` — held-out text for perplexity: WikiText-2 (v1, tokenised) validation.
* ``"wikitext-103"`` — WikiText-103 (raw) train; hub only.

Document order is fixed (files in a fixed order, lines in file order), so ``max_documents=N`` always
gives the same first N documents: smoke and mini runs are reproducible.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets

from .paths import data_dir, load_hub, local_file, unavailable

Document = list[str]
CORPUS_FEATURES = datasets.Features({"sentences": datasets.List(datasets.Value("string"))})
CORPORA: tuple[str, ...] = ("pretrain", "wikitext-2-valid", "wikitext-103")

HUB_WIKIPEDIA, HUB_WIKIPEDIA_CONFIG = "wikimedia/wikipedia", "20231101.en"
ENWIKI = "corpus/enwiki_wikiextractor/enwiki_docs.txt"
SQUAD_ARTICLES = "corpus/squad11_train_wikipedia/articles.txt"
GUTENBERG = "corpus/gutenberg_nltk"
WIKITEXT2_VALID = "corpus/wikitext-2/valid.txt"
# A book is one file; it is cut into documents of about this many characters (~1,700 words, a
# short chapter), so that a book is many documents like a Wikipedia dump is many articles.
GUTENBERG_CHUNK_CHARS = 10_000

# ------------------------------------------------------------------------------------------ sentences
# A sentence ends at . ! or ? (plus any closing quotes/brackets) when whitespace and then a capital
# letter, a digit or an opening quote/bracket follow.  A period does not end a sentence after a
# single capital letter (initials: "J. R. R. Tolkien", "U.S. Army") or after a few common
# abbreviations ("Mr. Smith", "e.g. This").  Simple and deterministic; errors only make a packed
# example split at a slightly different place, which MLM pre-training does not care about.
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "Mt", "No", "vs", "e.g", "i.e",
                  "Gen", "Col", "Lt", "Capt", "Gov", "Rev", "Inc", "Ltd", "Co", "Jan", "Feb", "Aug",
                  "Sept", "Oct", "Nov", "Dec", "approx", "ca", "cf", "Fig", "Vol")
# The look-behinds come after the literal "." so that they are only tried at periods (fast).
_NOT_ABBREVIATION = "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS) + r"(?<!\b[A-Z]\.)"
SENTENCE_END = re.compile(
    rf"(?:\.{_NOT_ABBREVIATION}|[!?])[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])"
)


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph (see ``SENTENCE_END``), whitespace-trimmed, empty ones dropped."""
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(paragraph):
        sentences.append(paragraph[start:match.end()].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def _document(paragraphs: Iterable[str]) -> Document:
    return [s for p in paragraphs for s in split_sentences(p)]


# ---------------------------------------------------------------------------------- document parsers
def line_documents(lines: Iterable[str]) -> Iterator[Document]:
    """Documents of a "one paragraph per line, blank line between documents" text (Wikipedia dumps).

    Used for the Wikipedia sample and for the SQuAD articles, whose first line (the title) simply
    becomes the first sentence.
    """
    paragraphs: list[str] = []
    for line in itertools.chain(lines, [""]):
        line = line.strip()
        if line:
            paragraphs.append(line)
        elif paragraphs:
            if document := _document(paragraphs):
                yield document
            paragraphs = []


def book_documents(text: str, chunk_chars: int = GUTENBERG_CHUNK_CHARS) -> Iterator[Document]:
    """Documents of a hard-wrapped book: paragraphs are separated by blank lines and their lines
    re-joined; consecutive paragraphs are grouped into documents of about ``chunk_chars`` characters."""
    chunk: list[str] = []
    size = 0
    for block in re.split(r"\n\s*\n", text):
        paragraph = " ".join(block.split())
        if not paragraph:
            continue
        chunk.append(paragraph)
        size += len(paragraph)
        if size >= chunk_chars:
            yield _document(chunk)
            chunk, size = [], 0
    if chunk:
        yield _document(chunk)


_WIKITEXT_HEADING = re.compile(r"^((?:= )+).*?(?: =)+$")  # " = Title = ", " = = Section = = ", ...


def wikitext_documents(lines: Iterable[str]) -> Iterator[Document]:
    """Documents of WikiText: an article starts at a ``" = Title = "`` line; headings (``" = = Sub = = "``)
    are markup, not prose, and are dropped; every other non-blank line is a paragraph."""
    paragraphs: list[str] = []
    for line in itertools.chain(lines, ["= <end> ="]):
        line = line.strip()
        heading = _WIKITEXT_HEADING.match(line)
        if heading and heading.group(1) == "= ":  # a level-1 heading: a new article
            if document := _document(paragraphs):
                yield document
            paragraphs = []
        elif line and not heading:
            paragraphs.append(line)


# ----------------------------------------------------------------------------------------- sources
def _read_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        yield from f


def _local_pretrain(root: Path) -> Iterator[Document]:
    hub = f'datasets.load_dataset("{HUB_WIKIPEDIA}", "{HUB_WIKIPEDIA_CONFIG}", split="train")'
    enwiki = local_file(root, ENWIKI, "the Wikipedia sample of the pre-training corpus", hub)
    squad = local_file(root, SQUAD_ARTICLES, "the SQuAD-articles part of the pre-training corpus", hub)
    books = sorted((root / GUTENBERG).glob("*.txt"))
    if not books:
        raise unavailable("the Gutenberg part of the pre-training corpus", hub,
                          f"there is no *.txt file in {root / GUTENBERG}")
    yield from line_documents(_read_lines(enwiki))
    yield from line_documents(_read_lines(squad))
    for book in books:
        yield from book_documents(book.read_text(encoding="latin-1"))  # NLTK's Gutenberg files are Latin-1


def _wikipedia_sentences(batch: dict[str, list]) -> dict[str, list]:
    """``Dataset.map`` function: Wikipedia articles (paragraphs separated by newlines) → documents."""
    documents = (_document(text.split("\n")) for text in batch["text"])
    return {"sentences": [d for d in documents if d]}


def _hub_wikipedia(max_documents: int | None) -> Iterator[Document] | datasets.Dataset:
    """English Wikipedia from the hub: the first articles streamed, or all of it as an on-disk map
    (~20 GB of text does not fit in memory; ``datasets`` caches the map by the hub data's fingerprint)."""
    if max_documents is not None:
        wiki = load_hub(HUB_WIKIPEDIA, HUB_WIKIPEDIA_CONFIG, split="train", streaming=True)
        return (d for batch in wiki.iter(batch_size=100) for d in _wikipedia_sentences(batch)["sentences"])
    wiki = load_hub(HUB_WIKIPEDIA, HUB_WIKIPEDIA_CONFIG, split="train")
    return wiki.map(_wikipedia_sentences, batched=True, remove_columns=wiki.column_names, features=CORPUS_FEATURES,
                    desc="splitting Wikipedia into sentences")


def _hub_wikitext(config: str, split: str) -> Iterator[Document]:
    rows = load_hub("Salesforce/wikitext", config, split=split)
    yield from wikitext_documents(row["text"] for row in rows)


def _documents(name: str, max_documents: int | None) -> Iterator[Document] | datasets.Dataset:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; valid corpora: {', '.join(CORPORA)}")
    root = data_dir()
    if name == "pretrain":
        return _local_pretrain(root) if root else _hub_wikipedia(max_documents)
    if name == "wikitext-2-valid":
        if root is None:
            return _hub_wikitext("wikitext-2-v1", "validation")
        hub = 'datasets.load_dataset("Salesforce/wikitext", "wikitext-2-v1", split="validation")'
        return wikitext_documents(_read_lines(local_file(root, WIKITEXT2_VALID, "WikiText-2 validation", hub)))
    if root is None:  # wikitext-103
        return _hub_wikitext("wikitext-103-raw-v1", "train")
    hub = 'datasets.load_dataset("Salesforce/wikitext", "wikitext-103-raw-v1", split="train")'
    raise unavailable("WikiText-103", hub, f"the local layout ({root}) has no WikiText-103")


def load_corpus(name: str = "pretrain", max_documents: int | None = None) -> datasets.Dataset:
    """The documents of corpus ``name`` (see the module docstring), the first ``max_documents`` of them.

    Built in memory (no cache files): the local mix is ~76 MB of text (~4 s to parse), and reading it
    again is cheaper than invalidating a cache keyed on file contents.  The one exception is the whole
    hub Wikipedia, which is too big for memory and comes back as a map of the hub's on-disk copy.
    """
    if max_documents is not None and max_documents < 0:
        raise ValueError(f"max_documents must be >= 0 or None, got {max_documents}")
    documents = _documents(name, max_documents)
    if isinstance(documents, datasets.Dataset):  # the whole hub Wikipedia, already a Dataset
        return documents
    documents = list(itertools.islice(documents, max_documents))
    return datasets.Dataset.from_dict({"sentences": documents}, features=CORPUS_FEATURES)
