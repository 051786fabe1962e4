"""Low-variance group filtering (``group_min_reward_std``): which groups are kept, what the loss then sees
(mask, advantages, normaliser), the logged kept share, and a step where every group is filtered."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from trl import GRPOTrainer, TrlParser

NAN = math.nan

# (case, rewards per rollout and reward function, weights, num_generations, min_std, kept per rollout)
KEPT = [
    # one reward, two groups of two: std 0.035 (below 0.1) and 0.42 (above)
    ("below_and_above", [[1.0], [0.95], [0.2], [0.8]], [1.0], 2, 0.1, [False, False, True, True]),
    # every rollout of a group scored the same: std 0, left out by any positive threshold
    ("uniform_group", [[0.0], [0.0], [0.0], [0.0], [1.0], [0.0]], [1.0], 3, 1e-6,
     [False, False, False, True, True, True]),
    # the std is of the weighted sum TRL uses for advantages: a varied reward with weight 0 counts for nothing
    ("weights", [[1.0, 0.3], [0.0, 0.3], [0.2, 0.3], [0.9, 0.7]], [0.0, 1.0], 2, 0.1, [False, False, True, True]),
    # rewards that skip a row (None -> NaN) add nothing to its sum; the others still vary it
    ("none_in_one_reward", [[NAN, 0.0], [NAN, 1.0], [0.5, NAN], [0.5, NAN]], [1.0, 1.0], 2, 0.1,
     [True, True, False, False]),
    # a row no reward scored is left out of its group's std (as of TRL's baseline): the rest still vary
    ("unscorable_row", [[NAN], [0.0], [1.0], [0.3], [0.3], [0.3]], [1.0], 3, 0.1,
     [True, True, True, False, False, False]),
    # fewer than two scored rows: no std, nothing to learn, not kept
    ("one_scored_row", [[NAN], [0.7], [0.0], [1.0]], [1.0], 2, 0.1, [False, False, True, True]),
    # a threshold right at the std keeps the group (below it is left out)
    ("at_threshold", [[0.0], [math.sqrt(2)]], [1.0], 2, 1.0, [True, True]),
]


@pytest.mark.parametrize("case,rewards,weights,generations,min_std,kept", KEPT, ids=[k[0] for k in KEPT])
def test_kept_rollouts(case, rewards, weights, generations, min_std, kept):
    from radrl.train.grpo import kept_rollouts

    got = kept_rollouts(torch.tensor(rewards), torch.tensor(weights), generations, min_std)
    assert got.tolist() == kept


def _parse(tmp_path, synth_data, *args):
    from radrl.train.grpo import RadrlGRPOConfig

    (cfg,) = TrlParser((RadrlGRPOConfig,)).parse_args_and_config(
        ["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tmp_path),
         "--train_data", str(synth_data["train"]), "--bf16", "false", *args])
    return cfg


def test_group_min_reward_std_defaults_to_off_and_parses(tmp_path, synth_data):
    assert _parse(tmp_path, synth_data).group_min_reward_std == 0.0
    assert _parse(tmp_path, synth_data, "--group_min_reward_std", "0.05").group_min_reward_std == 0.05


@pytest.mark.parametrize("value", ["-0.1", "nan", "inf"])
def test_bad_group_min_reward_std_fails_at_parse_time_with_the_fix(tmp_path, synth_data, value):
    with pytest.raises(ValueError, match=r"group_min_reward_std must be a finite number >= 0.*1e-6 leaves out"):
        _parse(tmp_path, synth_data, "--group_min_reward_std", value)


def test_a_loss_that_averages_over_sequences_is_warned_about(tmp_path, synth_data, caplog):
    _parse(tmp_path, synth_data, "--group_min_reward_std", "0.1", "--loss_type", "grpo")
    assert "still dilute the kept ones" in caplog.text
    caplog.clear()
    _parse(tmp_path, synth_data, "--group_min_reward_std", "0.1", "--loss_type", "dapo")
    assert "dilute" not in caplog.text


# --- the override, on a trainer whose TRL parts are stand-ins: what leaves _generate_and_score_completions ---

GATHERED = torch.tensor([[0.5], [0.5], [0.0], [1.0], [0.2], [0.2], [0.3], [0.9]])  # 2 processes x 4 rows, groups of 2
LENGTHS = [3, 2, 4, 1]  # completion tokens of this process's 4 rows


def loss_mask(out: dict):
    """The mask TRL's loss uses: completion_mask times tool_mask (where the filter takes rows out)."""
    return out["completion_mask"] * out.get("tool_mask", 1)


def _stub_trainer(monkeypatch, min_std, process_index, training=True):
    from radrl.train.grpo import RadrlGRPOTrainer

    def trl_generate_and_score(self, inputs):  # TRL's: calls _calculate_rewards, returns the rows' tensors
        self._calculate_rewards(inputs, None, None, None)
        mask = torch.tensor([[1] * n + [0] * (4 - n) for n in LENGTHS])
        return {"completion_ids": torch.ones_like(mask), "completion_mask": mask,
                "advantages": torch.tensor([0.7, -0.7, 1.0, -1.0]), "num_items_in_batch": torch.tensor(99)}

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", lambda self, *a: GATHERED.clone())
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", trl_generate_and_score)
    trainer = RadrlGRPOTrainer.__new__(RadrlGRPOTrainer)  # no model: only what the override reads
    trainer.args = SimpleNamespace(group_min_reward_std=min_std)
    trainer.model = SimpleNamespace(training=training)
    trainer.num_generations, trainer.reward_weights = 2, torch.tensor([1.0])
    # two processes: gathered tensors are this one's and the other's (its mask sums to 5 tokens)
    trainer.accelerator = SimpleNamespace(process_index=process_index, is_main_process=process_index == 0,
                                          gather=lambda t: torch.stack([t, torch.tensor(5)]))
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer.state = SimpleNamespace(global_step=7)
    return trainer


# (case, min_std, process, rows kept on this process, groups kept of 4)
OVERRIDE = [
    # process 0 holds groups 0 (std 0: out) and 1 (std 0.71: kept)
    ("process0", 0.1, 0, [False, False, True, True], 2),
    # process 1 holds groups 2 (std 0: out) and 3 (std 0.42: kept); groups are judged on the gathered rewards
    ("process1", 0.1, 1, [False, False, True, True], 2),
    # a threshold between the two kept groups' stds keeps only group 1 (process 0's)
    ("between", 0.5, 1, [False, False, False, False], 1),
]


@pytest.mark.parametrize("case,min_std,process,rows,groups", OVERRIDE, ids=[o[0] for o in OVERRIDE])
def test_filtered_groups_leave_the_loss_and_its_normaliser(monkeypatch, case, min_std, process, rows, groups):
    trainer = _stub_trainer(monkeypatch, min_std, process)
    out = trainer._generate_and_score_completions([{}] * 4)
    # filtered rows: no loss tokens and no advantage; kept rows as TRL made them
    assert loss_mask(out).sum(1).tolist() == [n if k else 0 for n, k in zip(LENGTHS, rows)]
    # the attention mask the log-probs were computed with is left as it was, for every row
    assert out["completion_mask"].sum(1).tolist() == LENGTHS
    assert out["advantages"].tolist() == pytest.approx([a if k else 0.0 for a, k in zip([0.7, -0.7, 1.0, -1.0], rows)])
    # the dapo normaliser counts the kept tokens (this process's plus the other process's, all processes' sum)
    assert out["num_items_in_batch"].item() == sum(n for n, k in zip(LENGTHS, rows) if k) + 5
    assert trainer._metrics["train"]["groups/kept_ratio"] == [groups / 4]


def test_kept_share_is_logged_and_off_means_unchanged(monkeypatch):
    trainer = _stub_trainer(monkeypatch, 0.1, 0)
    trainer._generate_and_score_completions([{}] * 4)
    assert trainer._metrics["train"]["groups/kept_ratio"] == [0.5]
    assert trainer._metrics["train"]["groups/all_filtered"] == [0.0]
    # 0 (the default) and evaluation: TRL's output untouched, nothing logged
    for min_std, training in [(0.0, True), (0.1, False)]:
        trainer = _stub_trainer(monkeypatch, min_std, 0, training=training)
        out = trainer._generate_and_score_completions([{}] * 4)
        assert out["num_items_in_batch"].item() == 99 and loss_mask(out).sum().item() == sum(LENGTHS)
        assert not trainer._metrics["train"] and not trainer._metrics["eval"]


def test_every_group_filtered_is_logged_and_warned(monkeypatch, caplog):
    trainer = _stub_trainer(monkeypatch, 10.0, 0)
    out = trainer._generate_and_score_completions([{}] * 4)
    assert loss_mask(out).sum().item() == 0 and out["num_items_in_batch"].item() == 5  # other process: its own
    assert trainer._metrics["train"]["groups/kept_ratio"] == [0.0]
    assert trainer._metrics["train"]["groups/all_filtered"] == [1.0]
    assert "step 7: all 4 rollout groups have a reward std below group_min_reward_std=10" in caplog.text


# --- a real TRL run on the tiny model ---------------------------------------------------------------------------

TASKS_SEEN: list[list[str]] = []


def varied_on_report(completions, task, **columns):
    """Varies with the completion's text on report rows, 0.5 on every grounding row: report groups have a
    reward std, grounding groups none."""
    from radrl.rewards import completion_text

    TASKS_SEEN.append(list(task))
    return [sum(map(ord, completion_text(c))) % 97 / 97 if t == "report" else 0.5 for c, t in zip(completions, task)]


def _train(tiny_model_dir, synth_data, tmp_path, min_std):
    from radrl.train.common import load_for_training
    from radrl.train.grpo import RadrlGRPOTrainer, grpo_dataset

    # 4 groups of 4 rollouts per generation, split into 2 micro-batches of 8 that one optimizer step accumulates
    cfg = _parse(tmp_path, synth_data, "--model_name_or_path", str(tiny_model_dir), "--use_cpu", "true",
                 "--group_min_reward_std", str(min_std), "--loss_type", "dapo", "--num_generations", "4",
                 "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2",
                 "--steps_per_generation", "2", "--max_completion_length", "8", "--max_steps", "1",
                 "--learning_rate", "1e-3", "--report_to", "none", "--activation_checkpointing", "false",
                 "--max_pixels", "4096", "--logging_steps", "1", "--seed", "0", "--beta", "0.04")
    model, processor = load_for_training(cfg)
    processor.tokenizer.padding_side = "left"
    trainer = RadrlGRPOTrainer(model=model, reward_funcs=[varied_on_report], args=cfg,
                               train_dataset=grpo_dataset(cfg), processing_class=processor)
    seen = []
    compute_loss = trainer.compute_loss

    def spy(model, inputs, *args, **kwargs):
        loss = compute_loss(model, inputs, *args, **kwargs)
        kept = {k: inputs[k].detach().clone() for k in ("completion_mask", "advantages", "num_items_in_batch")}
        seen.append(({**kept, "loss_mask": loss_mask(inputs).detach().clone()}, loss.detach()))
        return loss

    trainer.compute_loss = spy
    TASKS_SEEN.clear()
    trainer.train()
    return trainer, seen


@pytest.mark.slow
def test_tiny_run_filters_uniform_groups_across_accumulated_micro_batches(tiny_model_dir, synth_data, tmp_path):
    trainer, seen = _train(tiny_model_dir, synth_data, tmp_path, 1e-6)
    (tasks,) = TASKS_SEEN  # one generation for the step's two micro-batches
    groups = tasks[::4]
    assert set(groups) == {"report", "grounding"}  # the seed gives a mix: both kinds of group are present
    assert len(seen) == 2  # two accumulated micro-batches from one buffered generation
    masks = [inputs["loss_mask"] for inputs, _ in seen]
    # the grounding groups' rollouts (uniform reward) have no loss tokens and no advantage; report ones keep theirs
    dropped = sum(int((m.sum(1) == 0).sum()) for m in masks)
    assert dropped == 4 * groups.count("grounding")
    for inputs, loss in seen:
        empty = inputs["loss_mask"].sum(1) == 0
        assert (inputs["advantages"][empty] == 0).all() and torch.isfinite(loss)
        assert (inputs["completion_mask"].sum(1) > 0).all()  # every row keeps its attention mask
        # dapo's normaliser spans the generation batch and counts only the kept tokens
        assert inputs["num_items_in_batch"].item() == sum(int(m.sum()) for m in masks)
    (logged,) = [h for h in trainer.state.log_history if "groups/kept_ratio" in h]
    assert logged["groups/kept_ratio"] == groups.count("report") / 4 and logged["groups/all_filtered"] == 0.0


@pytest.mark.slow
def test_tiny_run_with_every_group_filtered_trains_nothing_and_says_so(tiny_model_dir, synth_data, tmp_path):
    trainer, seen = _train(tiny_model_dir, synth_data, tmp_path, 100.0)
    assert [loss.item() for _, loss in seen] == [0.0, 0.0]  # zero, not NaN
    (logged,) = [h for h in trainer.state.log_history if "groups/kept_ratio" in h]
    assert logged["groups/kept_ratio"] == 0.0 and logged["groups/all_filtered"] == 1.0
    assert logged["grad_norm"] == 0.0 and math.isfinite(logged["loss"])
    # metrics of micro-batches with no loss token (clip ratios' min / max) are left out by TRL, never NaN
    assert not [k for k, v in logged.items() if isinstance(v, float) and math.isnan(v)]
