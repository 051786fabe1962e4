"""A model that is not a complete local folder is one line that says what to fetch or copy, never the network
or a transformers traceback (issue 14: `--model org/name` spent ~53 s on the network, then 40 lines)."""

import shutil
import time

import pytest

from radrl.cli.verbs import main as radrl
from radrl.models.load import load, missing_parts, require_local


def test_hub_id_is_not_fetched_and_says_how(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")    # as on a user's machine: nothing stops transformers but radrl
    t0 = time.time()
    with pytest.raises(FileNotFoundError) as e:
        load("Qwen/Qwen3-VL-8B-Instruct")
    assert time.time() - t0 < 5
    msg = str(e.value)
    assert "\n" not in msg and "downloads nothing" in msg
    assert "hf download Qwen/Qwen3-VL-8B-Instruct --local-dir models/Qwen3-VL-8B-Instruct" in msg
    monkeypatch.setenv("RADRL_ALLOW_DOWNLOAD", "1")   # the explicit opt-in lets it through to transformers
    require_local("Qwen/Qwen3-VL-8B-Instruct")


def test_eval_with_a_hub_id_is_one_line_error(monkeypatch, tmp_path, synth_data, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(SystemExit) as e:
        radrl(["eval", "--model", "org/name", "--data", str(synth_data["test"]), "--out", str(tmp_path / "ev")])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("radrl eval: error: org/name is not a local folder") and len(err) == 2
    assert "hf download org/name" in err[0]
    assert not (tmp_path / "ev" / "manifest.json").exists()   # stopped before writing anything


@pytest.mark.parametrize("removed, named", [
    # (files taken out of a complete checkpoint, the parts the one-line error must name)
    (["model.safetensors"], ["weights (*.safetensors or pytorch_model*.bin)"]),
    (["model.safetensors", "tokenizer.json", "processor_config.json"],
     ["weights", "tokenizer (tokenizer.json or vocab.json)",
      "image processor (preprocessor_config.json or processor_config.json)"]),
    (["chat_template.jinja", "config.json"], ["config (config.json)", "chat template (chat_template.jinja)"]),
])
def test_incomplete_checkpoint_lists_every_missing_part(tiny_model_dir, tmp_path, removed, named):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, folder)
    for name in removed:
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError) as e:
        load(str(folder), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{folder} is not a complete Qwen3-VL checkpoint: missing ")
    for part in named:
        assert part in msg
    assert len(missing_parts(folder)) == len(named)


def test_complete_checkpoint_misses_nothing(tiny_model_dir):
    assert missing_parts(tiny_model_dir) == []
