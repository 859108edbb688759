"""The data layer: local GLUE/SQuAD/corpus against the hub schema and the staged counts, error
messages on bad input, sentence packing and the MLM collator's 80/10/10 rule.

Tests that read the shared data are marked ``requires_data`` and need ``ATB_DATA_DIR`` (e.g.
``ATB_DATA_DIR=../shared/data``; ``tests/conftest.py`` skips or fails them without it); the others build a
small fake layout under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import pytest
import torch

from atb.data import (
    GLUE_TASK_INFO, GLUE_TASKS, DataFormatError, DataUnavailableOffline, HubUnavailable, MLMCollator,
    build_pretraining_examples, data_dir, load_corpus, load_glue, load_squad, load_tokenizer,
    split_sentences,
)
from atb.data.corpus import book_documents, line_documents, wikitext_documents
from atb.data.packing import pack_document


@pytest.fixture
def shared_data() -> Path:
    """The shared local data (``ATB_DATA_DIR``); every test using it is marked ``requires_data``."""
    return Path(os.environ["ATB_DATA_DIR"])


@pytest.fixture
def fake_layout(tmp_path, monkeypatch) -> Path:
    """An empty local layout that ``ATB_DATA_DIR`` points at; tests write the files they need."""
    monkeypatch.setenv("ATB_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ data_dir
def test_data_dir_unset_means_hub(monkeypatch):
    monkeypatch.delenv("ATB_DATA_DIR", raising=False)
    assert data_dir() is None


def test_data_dir_missing_folder_names_variable_and_path(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("ATB_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match="ATB_DATA_DIR") as err:
        data_dir()
    assert str(missing) in str(err.value)
    with pytest.raises(FileNotFoundError, match="ATB_DATA_DIR"):
        load_glue("rte", "train")


def test_data_dir_must_be_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("ATB_DATA_DIR", str(write(tmp_path, "a-file", "x")))
    with pytest.raises(NotADirectoryError, match="ATB_DATA_DIR"):
        data_dir()


# ------------------------------------------------------------------------ the requires_data marker
def test_requires_data_skips_only_on_a_developer_machine_without_data_dir(tmp_path):
    from conftest import DATA_LAYOUT, data_must_be_present, data_problem

    complete = tmp_path / "complete"
    for name in DATA_LAYOUT:
        (complete / name).mkdir(parents=True)
    (tmp_path / "partial" / "glue").mkdir(parents=True)
    assert data_problem({"ATB_DATA_DIR": str(complete)}) is None
    assert "not set" in data_problem({}) and "not set" in data_problem({"ATB_DATA_DIR": "  "})
    assert "not an existing folder" in data_problem({"ATB_DATA_DIR": str(tmp_path / "nope")})
    assert "['corpus', 'squad']" in data_problem({"ATB_DATA_DIR": str(tmp_path / "partial")})
    # skip (False) only when neither CI nor ATB_DATA_DIR is set; otherwise missing data fails the test
    assert not data_must_be_present({}) and not data_must_be_present({"CI": "false", "ATB_DATA_DIR": ""})
    assert data_must_be_present({"CI": "true"}) and data_must_be_present({"CI": "1"})
    assert data_must_be_present({"ATB_DATA_DIR": str(tmp_path / "nope")})


# ------------------------------------------------------------------------------------------ tokenizer
def test_tokenizer_is_bert_base_uncased_without_fixed_length(tokenizer):
    assert tokenizer.vocab_size == 30522 and load_tokenizer() is tokenizer
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id) == (101, 102, 103)
    assert tokenizer("Hello Héllo")["input_ids"] == [101, 7592, 7592, 102]  # lower-cased, accents stripped
    assert len(tokenizer("word " * 300)["input_ids"]) == 302  # the export's 128-token truncation is off
    assert len(tokenizer.backend_tokenizer.encode("a b").ids) == 4  # and so is its fixed padding


# --------------------------------------------------------------------------------------------- GLUE
COUNTS = {("cola", "train"): 8551, ("cola", "validation"): 1043, ("sst2", "train"): 67349,
          ("sst2", "validation"): 872, ("mrpc", "train"): 3668, ("mrpc", "validation"): 408,
          ("stsb", "train"): 5749, ("stsb", "validation"): 1500, ("rte", "train"): 2490,
          ("rte", "validation"): 277, ("wnli", "train"): 635, ("wnli", "validation"): 71,
          ("qnli", "validation"): 5463}
HUB_COLUMNS = {"cola": ["sentence", "label", "idx"], "sst2": ["sentence", "label", "idx"],
               "mrpc": ["sentence1", "sentence2", "label", "idx"], "stsb": ["sentence1", "sentence2", "label", "idx"],
               "rte": ["sentence1", "sentence2", "label", "idx"], "wnli": ["sentence1", "sentence2", "label", "idx"],
               "qnli": ["question", "sentence", "label", "idx"], "qqp": ["question1", "question2", "label", "idx"],
               "mnli": ["premise", "hypothesis", "label", "idx"]}
HUB_LABELS = {"cola": ["unacceptable", "acceptable"], "sst2": ["negative", "positive"],
              "mrpc": ["not_equivalent", "equivalent"], "qqp": ["not_duplicate", "duplicate"],
              "mnli": ["entailment", "neutral", "contradiction"], "qnli": ["entailment", "not_entailment"],
              "rte": ["entailment", "not_entailment"], "wnli": ["not_entailment", "entailment"]}


def test_glue_task_info_matches_the_hub():
    assert GLUE_TASKS == ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
    for task in GLUE_TASKS:
        info = GLUE_TASK_INFO[task]
        assert [*info.text_columns, "label", "idx"] == HUB_COLUMNS[task]
        assert list(info.features()) == HUB_COLUMNS[task]
        assert info.num_labels == len(HUB_LABELS.get(task, [None]))
        assert list(info.label_names or []) == HUB_LABELS.get(task, [])
    assert GLUE_TASK_INFO["mnli"].validation_splits == ("validation_matched", "validation_mismatched")
    assert GLUE_TASK_INFO["stsb"].is_regression and GLUE_TASK_INFO["sst2"].folder == "SST-2"
    assert (GLUE_TASK_INFO["stsb"].folder, GLUE_TASK_INFO["cola"].folder) == ("STS-B", "CoLA")


@pytest.mark.requires_data
@pytest.mark.parametrize("task,split", sorted(COUNTS))
def test_local_glue_counts_and_schema(shared_data, task, split):
    ds = load_glue(task, split)
    assert len(ds) == COUNTS[task, split]
    assert ds.column_names == HUB_COLUMNS[task]
    assert ds.features == GLUE_TASK_INFO[task].features()
    assert ds["idx"][:3] == [0, 1, 2]
    assert all(isinstance(s, str) and s for s in ds[GLUE_TASK_INFO[task].text_columns[0]])


@pytest.mark.requires_data
def test_local_glue_labels_use_the_hub_encoding(shared_data):
    assert load_glue("qnli", "validation")[0]["label"] == 0  # "entailment" in the TSV
    assert load_glue("qnli", "validation")[1]["label"] == 1  # "not_entailment"
    rte = load_glue("rte", "train")
    assert rte[0]["label"] == 1 and rte.features["label"].int2str(0) == "entailment"
    assert sorted(set(rte["label"])) == [0, 1]
    assert load_glue("stsb", "validation")[1]["label"] == pytest.approx(4.75)
    sst2 = load_glue("sst2", "train")
    assert sum(sst2["label"]) == 37569  # positives in the official set
    mrpc = load_glue("mrpc", "train")
    assert sum(mrpc["label"]) == 2474 and mrpc[0]["sentence1"].startswith("Amrozi accused")  # BOM handled
    assert '" the witness "' in mrpc[0]["sentence1"]  # bare quotes kept verbatim
    cola = load_glue("cola", "validation")
    assert cola[0] == {"sentence": "The sailors rode the breeze clear of the rocks.", "label": 1, "idx": 0}


@pytest.mark.requires_data
@pytest.mark.parametrize("task,split,file", [
    ("mnli", "train", "MNLI/train.tsv"), ("mnli", "validation_matched", "MNLI/dev_matched.tsv"),
    ("mnli", "validation_mismatched", "MNLI/dev_mismatched.tsv"), ("qqp", "train", "QQP/train.tsv"),
    ("qqp", "validation", "QQP/dev.tsv"), ("qnli", "train", "QNLI/train.tsv"),
])
def test_glue_absent_offline_points_to_the_hub(shared_data, task, split, file):
    with pytest.raises(DataUnavailableOffline) as err:
        load_glue(task, split)
    message = str(err.value)
    assert "not available offline" in message and file in message
    assert f'datasets.load_dataset("nyu-mll/glue", "{task}"' in message and "unset ATB_DATA_DIR" in message
    assert isinstance(err.value, FileNotFoundError)


def test_glue_test_split_is_hub_only(fake_layout):
    with pytest.raises(DataUnavailableOffline, match="nyu-mll/glue"):
        load_glue("rte", "test")


def test_glue_unknown_task_or_split_lists_the_valid_ones():
    with pytest.raises(ValueError, match="cola, sst2, mrpc"):
        load_glue("mnli-m", "train")
    with pytest.raises(ValueError, match="validation_matched, validation_mismatched"):
        load_glue("mnli", "validation")
    with pytest.raises(ValueError, match="train, validation, test"):
        load_glue("rte", "dev")


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


def test_glue_row_with_wrong_field_count_names_file_and_line(fake_layout):
    path = write(fake_layout, "glue/RTE/train.tsv",
                 RTE_HEADER + "0\tA man sleeps.\tA man rests.\tentailment\n1\tonly three\tfields\n")
    with pytest.raises(DataFormatError) as err:
        load_glue("rte", "train")
    assert str(path) in str(err.value) and "line 3" in str(err.value) and "found 3" in str(err.value)


def test_cola_without_header_checks_its_four_fields(fake_layout):
    path = write(fake_layout, "glue/CoLA/dev.tsv", "gj04\t1\t\tGood sentence.\ngj04\t0\t*\n")
    with pytest.raises(DataFormatError, match="line 2") as err:
        load_glue("cola", "validation")
    assert str(path) in str(err.value)


def test_glue_bad_label_and_bare_quotes(fake_layout):
    write(fake_layout, "glue/RTE/dev.tsv", RTE_HEADER + '0\tHe said "hi.\tHe "spoke".\tnot_entailment\n')
    row = load_glue("rte", "validation")[0]
    assert (row["sentence1"], row["sentence2"], row["label"]) == ('He said "hi.', 'He "spoke".', 1)
    write(fake_layout, "glue/RTE/train.tsv", RTE_HEADER + "0\ta\tb\tmaybe\n")
    with pytest.raises(DataFormatError, match=r"line 2: label field 'label' is 'maybe'"):
        load_glue("rte", "train")
    write(fake_layout, "glue/SST-2/train.tsv", "text\tlabel\nfine\t1\n")
    with pytest.raises(DataFormatError, match="header lacks the field"):
        load_glue("sst2", "train")


# -------------------------------------------------------------------------------------------- SQuAD
SQUAD_COLUMNS = ["id", "title", "context", "question", "answers"]


@pytest.mark.requires_data
@pytest.mark.parametrize("version,split,count", [("v1.1", "train", 87599), ("v1.1", "validation", 10570),
                                                 ("v2.0", "validation", 11873)])
def test_local_squad_counts_and_schema(shared_data, version, split, count):
    ds = load_squad(version, split)
    assert len(ds) == count and ds.column_names == SQUAD_COLUMNS
    assert ds.features["answers"] == {"text": datasets.List(datasets.Value("string")),
                                      "answer_start": datasets.List(datasets.Value("int32"))}


@pytest.mark.requires_data
def test_squad_dev_answers_are_spans_of_the_context(shared_data):
    dev = load_squad("v1.1", "validation")
    for row in dev:
        assert row["answers"]["text"], row["id"]
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start:].startswith(text), row["id"]
    assert dev[0]["id"] == "56be4db0acb8001400a502ec"


@pytest.mark.requires_data
def test_squad_v2_train_absent_offline(shared_data):
    with pytest.raises(DataUnavailableOffline, match=r'rajpurkar/squad_v2", split="train"') as err:
        load_squad("v2.0", "train")
    assert "train-v2.0.json" in str(err.value) and "not available offline" in str(err.value)


def test_squad_unknown_version_or_split():
    with pytest.raises(ValueError, match="v1.1, v2.0"):
        load_squad("v3", "train")
    with pytest.raises(ValueError, match="train, validation"):
        load_squad("v1.1", "dev")


def _squad(paragraph: dict) -> str:
    return json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Paris is in France.", "qas": [
            {"id": "q0", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}]},
        paragraph]}]})


@pytest.mark.parametrize("text,where", [
    ('{"data": [', "line 1, column 11"),
    ('{"version": "1.1"}', "data is missing"),
    ("[1, 2]", "top level is a list"),
    (_squad({"qas": []}), "data[0].paragraphs[1].context is missing"),
    (_squad({"context": "c", "qas": [{"id": "x", "answers": []}]}), "data[0].paragraphs[1].qas[0].question"),
    (_squad({"context": "c", "qas": [{"id": "x", "question": "q"}]}), "data[0].paragraphs[1].qas[0].answers"),
    (_squad({"context": "c", "qas": [{"id": "x", "question": "q", "answers": [{"text": "c", "answer_start": "0"}]}]}),
     "qas[0].answers[0].answer_start is a str"),
])
def test_non_squad_json_names_file_and_place(fake_layout, text, where):
    path = write(fake_layout, "squad/dev-v1.1.json", text)
    with pytest.raises(DataFormatError) as err:
        load_squad("v1.1", "validation")
    assert str(path) in str(err.value) and where in str(err.value)


def test_small_squad_file_flattens_like_the_hub(fake_layout):
    write(fake_layout, "squad/dev-v2.0.json", _squad(
        {"context": " Lyon.", "qas": [{"id": "q1", "question": "?", "answers": [], "is_impossible": True}]}))
    ds = load_squad("v2.0", "validation")
    assert ds[0]["answers"] == {"text": ["France"], "answer_start": [12]}
    assert ds[1] == {"id": "q1", "title": "T", "context": " Lyon.", "question": "?",
                     "answers": {"text": [], "answer_start": []}}


# ------------------------------------------------------------------------------------------- corpus
def test_split_sentences():
    assert split_sentences("Mr. Smith met J. R. R. Tolkien. He said \"Hi!\" Then left.  (It rained.) 3 days.") == [
        "Mr. Smith met J. R. R. Tolkien.", 'He said "Hi!"', "Then left.", "(It rained.)", "3 days."]
    assert split_sentences("the lobster . The size is 3 @.@ 1 m . e.g. this one?") == [
        "the lobster .", "The size is 3 @.@ 1 m . e.g. this one?"]
    assert split_sentences("   ") == []


def test_document_parsers():
    lines = ["Title A\n", "First. Second.\n", "\n", "\n", "Title B\n", "Only one.\n"]
    assert list(line_documents(lines)) == [["Title A", "First.", "Second."], ["Title B", "Only one."]]
    book = "CHAPTER I\n\nA wrapped\nline. Next one.\n\n\nB" + "\n\nWord." * 10
    docs = list(book_documents(book, chunk_chars=30))
    assert docs[0] == ["CHAPTER I", "A wrapped line.", "Next one."]
    assert sum(len(d) for d in docs) == 3 + 1 + 10
    wiki = [" \n", " = A = \n", " Text one . Two .\n", " = = Sub = = \n", " More .\n", " = B = \n", " Bee .\n"]
    assert list(wikitext_documents(wiki)) == [["Text one .", "Two .", "More ."], ["Bee ."]]


@pytest.mark.requires_data
def test_local_pretrain_corpus_first_documents_are_deterministic(shared_data):
    docs = load_corpus("pretrain", max_documents=25)
    assert len(docs) == 25 and docs.column_names == ["sentences"]
    assert docs[0]["sentences"][0].startswith("Jarred Shaw (born September 28, 1990)")
    assert all(docs["sentences"]) and docs["sentences"] == load_corpus("pretrain", max_documents=25)["sentences"]
    assert len(load_corpus("pretrain", max_documents=0)) == 0


@pytest.mark.requires_data
def test_local_wikitext2_validation_is_60_articles(shared_data):
    docs = load_corpus("wikitext-2-valid")
    assert len(docs) == 60
    assert docs[0]["sentences"][0].startswith("Homarus gammarus , known as the European lobster")
    assert not any(s.startswith("=") for d in docs["sentences"] for s in d)


def test_corpus_unknown_name_and_offline_wikitext103(fake_layout):
    with pytest.raises(ValueError, match="pretrain, wikitext-2-valid"):
        load_corpus("bookcorpus")
    with pytest.raises(DataUnavailableOffline, match="wikitext-103-raw-v1"):
        load_corpus("wikitext-103")
    with pytest.raises(DataUnavailableOffline, match="enwiki_docs.txt"):
        load_corpus("pretrain")


# ------------------------------------------------------------------------------------------ packing
def test_pack_document_keeps_sentences_whole_and_cuts_long_ones():
    assert pack_document([[1, 2], [3, 4], [5], [6, 7, 8]], budget=5) == [[1, 2, 3, 4, 5], [6, 7, 8]]
    assert pack_document([[1], list(range(10, 22)), [2]], budget=5) == [
        [1], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19], [20, 21, 2]]
    assert pack_document([[], []], budget=5) == []


def test_packing_never_mixes_documents(tokenizer):
    animals = ["the cat sleeps.", "a dog barks loudly at night.", "cats and dogs play."]
    colours = ["red is warm.", "blue and green are cool colours.", "yellow shines."]
    long = "numbers " * 70 + "end."
    documents = datasets.Dataset.from_dict({"sentences": [animals * 4, colours * 4, [long], []]})
    examples = build_pretraining_examples(documents, tokenizer, max_seq_len=24)
    assert examples.column_names == ["input_ids", "token_type_ids", "attention_mask"]
    assert examples.cache_files == []  # built in memory: nothing partial on disk
    words = {"animal": set(tokenizer(" ".join(animals), add_special_tokens=False)["input_ids"]),
             "colour": set(tokenizer(" ".join(colours), add_special_tokens=False)["input_ids"]),
             "long": set(tokenizer(long, add_special_tokens=False)["input_ids"])}
    sources = []
    for ex in examples:
        ids = ex["input_ids"]
        assert len(ids) <= 24 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert ex["token_type_ids"] == [0] * len(ids) and ex["attention_mask"] == [1] * len(ids)
        body = set(ids[1:-1])
        owners = [name for name, vocab in words.items() if body <= vocab]
        assert len(owners) == 1, tokenizer.decode(ids)
        sources.append(owners[0])
    assert sources == sorted(sources, key=["animal", "colour", "long"].index)  # document order kept
    # whole sentences only: each animal example decodes to a run of complete sentences
    for ex, source in zip(examples, sources):
        if source == "animal":
            text = tokenizer.decode(ex["input_ids"][1:-1])
            assert text.endswith(".") and any(text.startswith(s[:5]) for s in animals)


@pytest.mark.requires_data
def test_packing_real_documents(shared_data, tokenizer):
    docs = load_corpus("pretrain", max_documents=30)
    examples = build_pretraining_examples(docs, tokenizer, max_seq_len=64)
    lengths = [len(ids) for ids in examples["input_ids"]]
    assert max(lengths) <= 64 and min(lengths) >= 3
    assert sum(lengths) / len(lengths) > 32  # packing fills the budget, not one sentence per example
    with pytest.raises(ValueError, match="max_seq_len"):
        build_pretraining_examples(docs, tokenizer, max_seq_len=2)


# ----------------------------------------------------------------------------------------- collator
def _batch(tokenizer, n: int = 256, seed: int = 0) -> list[dict]:
    """Examples of varying length: [CLS] random word ids [SEP], unpadded."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(n):
        body = torch.randint(1000, tokenizer.vocab_size, (int(torch.randint(20, 127, (1,), generator=g)),), generator=g)
        ids = [tokenizer.cls_token_id, *body.tolist(), tokenizer.sep_token_id]
        examples.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids)})
    return examples


def test_collator_masks_15_percent_with_the_80_10_10_rule(tokenizer):
    examples = _batch(tokenizer)
    collator = MLMCollator(tokenizer, generator=torch.Generator().manual_seed(1))
    batch = collator(examples)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert all(t.dtype == torch.long for t in batch.values())
    original = MLMCollator(tokenizer).pad(examples)["input_ids"]
    real = (batch["attention_mask"] == 1) & (original != tokenizer.cls_token_id) & (original != tokenizer.sep_token_id)
    selected = batch["labels"] != -100
    assert not (selected & ~real).any()  # specials and padding are never selected
    assert abs(selected.sum() / real.sum() - 0.15) < 0.01
    assert torch.equal(batch["labels"][selected], original[selected])
    assert torch.equal(batch["input_ids"][~selected], original[~selected])  # nothing else changes
    n = selected.sum().item()
    masked = (batch["input_ids"] == tokenizer.mask_token_id) & selected
    kept = (batch["input_ids"] == original) & selected
    randomised = selected & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.03
    assert abs(randomised.sum().item() / n - 0.1) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02


def test_collator_pads_dynamically_and_is_deterministic(tokenizer):
    examples = [{"input_ids": [101, 2000, 102]}, {"input_ids": [101, 2000, 2001, 2002, 2003, 102]}]
    batch = MLMCollator(tokenizer, pad_to_multiple_of=8)(examples)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0, 0], [1] * 6 + [0, 0]]
    assert (batch["input_ids"][0, 3:] == tokenizer.pad_token_id).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()

    many = _batch(tokenizer, n=32)
    runs = [MLMCollator(tokenizer, generator=torch.Generator().manual_seed(s))(many) for s in (7, 7, 8)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not torch.equal(runs[0]["labels"], runs[2]["labels"])
    with pytest.raises(ValueError, match="mlm_probability"):
        MLMCollator(tokenizer, mlm_probability=1.0)
    with pytest.raises(ValueError, match="mlm_probability"):
        MLMCollator(tokenizer, mlm_probability=-0.1)


# ------------------------------------------------------------------------------------------ the hub
def test_without_data_dir_the_loaders_call_the_hub(monkeypatch):
    monkeypatch.delenv("ATB_DATA_DIR", raising=False)
    calls = []
    rows = {"text": [" = T = \n", " Hello there . Bye .\n"]}
    wiki = {"text": ["Alpha one. Alpha two.\nAlpha three.", "", "Beta."]}

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        ds = datasets.Dataset.from_dict(wiki if args[0] == "wikimedia/wikipedia" else rows)
        return ds.to_iterable_dataset() if kwargs.get("streaming") else ds

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    load_glue("mnli", "validation_matched")
    load_squad("v2.0", "train")
    assert load_corpus("wikitext-2-valid")["sentences"] == [["Hello there .", "Bye ."]]
    assert calls == [(("nyu-mll/glue", "mnli"), {"split": "validation_matched"}),
                     (("rajpurkar/squad_v2",), {"split": "train"}),
                     (("Salesforce/wikitext", "wikitext-2-v1"), {"split": "validation"})]
    expected = [["Alpha one.", "Alpha two.", "Alpha three."], ["Beta."]]
    assert load_corpus("pretrain", max_documents=1)["sentences"] == expected[:1]
    assert calls[-1][1] == {"split": "train", "streaming": True}
    assert load_corpus("pretrain")["sentences"] == expected


@pytest.mark.parametrize("load, dataset, call", [
    (lambda: load_glue("rte", "train"), "nyu-mll/glue", 'datasets.load_dataset("nyu-mll/glue", "rte", split="train")'),
    (lambda: load_squad("v2.0", "validation"), "rajpurkar/squad_v2",
     'datasets.load_dataset("rajpurkar/squad_v2", split="validation")'),
    (lambda: load_corpus("wikitext-2-valid"), "Salesforce/wikitext",
     'datasets.load_dataset("Salesforce/wikitext", "wikitext-2-v1", split="validation")'),
    (lambda: load_corpus("pretrain", max_documents=3), "wikimedia/wikipedia", '"20231101.en"'),
])
def test_unreachable_hub_without_atb_data_dir_says_to_set_it(monkeypatch, load, dataset, call):
    """Offline without ATB_DATA_DIR: the error names the hub dataset and points to ATB_DATA_DIR and the README."""
    monkeypatch.delenv("ATB_DATA_DIR", raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{args[0]}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HubUnavailable) as err:
        load()
    message = str(err.value)
    assert f"'{dataset}'" in message and call in message
    assert "set ATB_DATA_DIR to a local copy" in message and '"Data" section of README.md' in message
    assert isinstance(err.value.__cause__, ConnectionError) and "OfflineModeIsEnabled" in message
    assert not isinstance(err.value, DataUnavailableOffline)  # reachable-elsewhere data is never reported as n/a
