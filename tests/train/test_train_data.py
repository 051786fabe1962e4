"""The three forms of train_data SFT accepts: samples, radrl conversation rows, RadVLM / LLaVA JSON."""

import json
import shutil

import pytest
from trl import TrlParser

from radrl.train.common import train_data_kind

COMMON = ["--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--per_device_train_batch_size", "2", "--save_strategy", "no", "--logging_steps", "1"]


@pytest.mark.parametrize("name, content, kind", [
    ("s.jsonl", {"id": "a", "image": "x.png", "report": "r"}, "samples"),          # radrl.data.schema rows
    ("c.jsonl", {"id": "a", "prompt": [], "completion": []}, "conversations"),      # built rows (coldstart)
    ("l.jsonl", {"id": "a", "image": "x.png", "conversations": []}, "llava"),       # RadVLM entries, one per line
    ("l.json", [{"id": "a", "image": "x.png", "conversations": []}], "llava"),      # the RadVLM release file
])
def test_train_data_kind(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_text(json.dumps(content) + "\n")
    assert train_data_kind(str(path)) == kind


def test_sft_trains_on_the_radvlm_json_release_format(tiny_model_dir, synth_data, tmp_path, caplog):
    """Entries with image paths relative to the JSON's folder, one multi-turn entry, one broken entry (skipped
    and reported); every usable entry becomes a training row whatever `tasks` says (the file names no task)."""
    from radrl.data.schema import read_jsonl
    from radrl.train.sft import RadrlSFTConfig, build_trainer

    samples = list(read_jsonl(synth_data["train"]))[:3]
    for s in samples:
        shutil.copy(s.image, tmp_path / f"{s.id}.png")
    entries = [{"id": s.id, "image": f"{s.id}.png", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the findings."}, {"from": "gpt", "value": s.report}]}
        for s in samples[:2]]
    entries.append({"id": samples[2].id, "image": f"{samples[2].id}.png", "conversations": [
        {"from": "human", "value": "<image>\nIs there cardiomegaly?"}, {"from": "gpt", "value": "No."},
        {"from": "human", "value": "Describe the findings."}, {"from": "gpt", "value": samples[2].report}]})
    entries.append({"id": "broken", "image": "x.png"})  # no conversations
    path = tmp_path / "radvlm_train.json"
    path.write_text(json.dumps(entries))

    (cfg,) = TrlParser((RadrlSFTConfig,)).parse_args_and_config(
        ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(path), "--output_dir", str(tmp_path / "o"),
         "--max_steps", "1", *COMMON])
    trainer, _ = build_trainer(cfg)
    assert "skipped 1 unusable entries" in caplog.text  # a warning of radrl.train.common
    assert len(trainer.train_dataset) == 3
    trainer.train()
    assert any("loss" in h for h in trainer.state.log_history)
