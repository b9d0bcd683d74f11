"""The sweep runner: the artefact form, a failure recorded, provenance per run, and resuming after an interruption."""

import json
import time

import numpy as np
import pytest

import picollm_helpers as h

CONFIGS = [{"model": "LSTM", "size": size} for size in (1, 2, 3, 4)]


def square(config):
    return {"loss": config["size"] ** 2}


def test_artefact_form_and_a_failure_recorded(tmp_path):
    def sometimes_out_of_memory(config):
        if config["size"] == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return square(config)

    path = tmp_path / "demo.json"
    artefact = h.run_sweep("demo", CONFIGS, sometimes_out_of_memory, preset="quick", device="cpu",
                           sweep_config={"steps": 3}, path=path)
    assert set(artefact) == set(h.ARTEFACT_FIELDS)
    assert artefact["name"] == "demo" and artefact["config"] == {"steps": 3} and artefact["preset"] == "quick"
    runs = artefact["results"]["runs"]
    assert artefact["results"]["complete"] is True
    assert [run["status"] for run in runs] == ["ok", "failed", "ok", "ok"]
    assert runs[1]["error"] == "RuntimeError: CUDA out of memory (simulated)" and "loss" not in runs[1]
    assert [run.get("loss") for run in runs] == [1, None, 9, 16]
    assert json.loads(path.read_text()) == artefact
    assert list(h.ok_runs(artefact)["size"]) == [1, 3, 4]


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "demo.json"

    def interrupted(config):
        if config["size"] == 3:
            raise KeyboardInterrupt
        return square(config)

    with pytest.raises(KeyboardInterrupt):
        h.run_sweep("demo", CONFIGS, interrupted, preset="quick", device="cpu", sweep_config={"steps": 3}, path=path)
    partial = json.loads(path.read_text())
    assert partial["results"]["complete"] is False
    assert [run["config"]["size"] for run in partial["results"]["runs"]] == [1, 2]
    time.sleep(1.1)  # so that a stamp written now differs from the interrupted run's

    ran = []

    def counting(config):
        ran.append(config["size"])
        return square(config)

    artefact = h.run_sweep("demo", CONFIGS, counting, preset="quick", device="cpu", sweep_config={"steps": 3},
                           path=path, resume=True)
    assert ran == [3, 4], "finished configs must not run again"
    assert [run["loss"] for run in artefact["results"]["runs"]] == [1, 4, 9, 16]
    assert artefact["results"]["complete"] is True
    assert (artefact["results"]["computed"], artefact["results"]["kept"]) == (2, 2)
    runs = artefact["results"]["runs"]
    assert runs[:2] == partial["results"]["runs"], "kept runs keep their own stamps"
    assert runs[2]["provenance"]["created"] != runs[0]["provenance"]["created"]
    assert artefact["created"] != partial["created"], "the artefact's stamp is the run that wrote it"


def test_a_default_rerun_recomputes_every_config(tmp_path):
    path = tmp_path / "demo.json"
    first = h.run_sweep("demo", CONFIGS, square, preset="quick", device="cpu", sweep_config={"steps": 3}, path=path)
    time.sleep(1.1)
    ran = []
    again = h.run_sweep("demo", CONFIGS, lambda c: ran.append(c["size"]) or square(c), preset="quick", device="cpu",
                        sweep_config={"steps": 3}, path=path)
    assert ran == [1, 2, 3, 4]
    assert (again["results"]["computed"], again["results"]["kept"]) == (4, 0)
    assert again["created"] != first["created"]
    assert all(run["provenance"]["created"] > first["created"] for run in again["results"]["runs"])


def test_runs_carry_their_own_provenance(tmp_path):
    artefact = h.run_sweep("demo", CONFIGS[:1], square, preset="quick", device="cpu", sweep_config={}, path=tmp_path / "d.json")
    stamp = artefact["results"]["runs"][0]["provenance"]
    assert set(stamp) == {"created", "git_commit", "device", "torch_version", "base_corpus", "code_fingerprint"}
    assert stamp["code_fingerprint"] == h.code_fingerprint() == artefact["results"]["code_fingerprint"]


def test_a_kept_run_from_other_code_is_recomputed(tmp_path, monkeypatch):
    path = tmp_path / "demo.json"
    h.run_sweep("demo", CONFIGS[:2], square, preset="quick", device="cpu", sweep_config={}, path=path)
    monkeypatch.setattr(h.sweeps, "code_fingerprint", lambda: "changed-code")
    ran = []
    h.run_sweep("demo", CONFIGS[:2], lambda c: ran.append(c["size"]) or square(c), preset="quick", device="cpu",
                sweep_config={}, path=path, resume=True)
    assert ran == [1, 2]


def test_resume_follows_the_environment(monkeypatch):
    monkeypatch.setenv("PICOLLM_RESUME", "1")
    assert h.resume_requested()
    monkeypatch.setenv("PICOLLM_RESUME", "0")
    assert not h.resume_requested()


def test_failed_configs_are_retried_and_other_settings_start_afresh(tmp_path):
    path = tmp_path / "demo.json"
    h.run_sweep("demo", CONFIGS[:2], lambda c: (_ for _ in ()).throw(ValueError("bad")) if c["size"] == 2
                else square(c), preset="quick", device="cpu", sweep_config={"steps": 3}, path=path)
    ran = []

    def counting(config):
        ran.append(config["size"])
        return square(config)

    h.run_sweep("demo", CONFIGS[:2], counting, preset="quick", device="cpu", sweep_config={"steps": 3}, path=path,
                resume=True)
    assert ran == [2]
    h.run_sweep("demo", CONFIGS[:2], counting, preset="quick", device="cpu", sweep_config={"steps": 5}, path=path,
                resume=True)
    assert ran == [2, 1, 2], "a sweep with other settings must not reuse the old runs"


def test_memorisation_measures():
    training = [[1, 2, 3, 4, 5, 6]]
    assert h.copied_ngram_fraction([1, 2, 3, 4, 5], training, n=4) == 1.0
    assert h.copied_ngram_fraction([1, 2, 3, 4, 9], training, n=4) == 0.5
    assert h.word_share("The harbor, the fog!", {"the", "harbor"}) == 0.75
    assert h.copied_ngram_fraction([1, 2, 3, 4], [np.array([9, 1, 2, 3, 4], dtype=np.uint16)], n=4) == 1.0


def test_hparam_subsets_are_inside_the_notes_grid():
    grid = h.HPARAM_GRID
    for preset in ("quick", "cpu", "gpu"):
        configs = h.hparam_configs(h.get_run_preset(preset))
        assert len({h.config_key(c) for c in configs}) == len(configs), "no config twice"
        for config in configs:
            assert config["embed_size"] in grid["embed_size"] and config["block_size"] in grid["block_size"]
            assert config["learning_rate"] in grid["learning_rate"]
            assert config["depth"] in (h.LSTM_LAYERS if config["model"] == "LSTM" else h.TRANSFORMER_HEADS)
    assert len(h.hparam_configs(h.get_run_preset("gpu"))) == 2 * 3 * 3 * 2 * 2
