"""P(IK) probe training on a tiny model, loading it into a tier, and writing calibrated thresholds."""

import json

import numpy as np
import pytest

from cascade.router.config import Tier, load_config, parse_config
from cascade.router.errors import ProbeError
from cascade.router.probe import load_probe
from cascade.workers.backends import create_backend
from cascade.workers.lab.labelled_data import load_labelled
from cascade.workers.lab.probe_training import auroc, collect, cross_fitted, fit_probe, train
from cascade.workers.lab.samples import sample_questions
from cascade.workers.runtime.scoring import TierScorer


@pytest.fixture
def labelled(tmp_path):
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sample_questions()))
    return load_labelled(str(path))


def test_a_probe_trains_round_trips_and_drives_a_tier(labelled, tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_FEATURES_DIR", str(tmp_path / "features"))
    backend = create_backend(Tier(name="t", backend="transformers", model="tiny:small"))
    backend.load()
    features = collect(backend, labelled, [0, 1])
    assert features["hidden_0"].shape == (len(labelled.questions), backend.hidden_size)
    again = collect(backend, labelled, [1])  # served from the cache, no forward pass
    np.testing.assert_array_equal(again["hidden_1"], features["hidden_1"])
    probe, table = train(features, [0, 1], kind="logistic", model="tiny:small", data_digest=labelled.digest())
    assert [row["layer"] for row in table] == [0, 1] and probe.layer in (0, 1)
    assert probe.metadata["train_hash"] == labelled.digest() and probe.metadata["n_train"] == len(labelled.gold)
    path = tmp_path / "probe.npz"
    probe.save(path)
    loaded = load_probe(path)
    np.testing.assert_allclose(loaded.predict(features[f"hidden_{probe.layer}"]), probe.predict(features[f"hidden_{probe.layer}"]))

    config = parse_config({"tiers": [
        {"name": "small", "backend": "transformers", "model": "tiny:small", "probe": str(path), "tau_t": 0.0, "tau_ik": 0.5},
        {"name": "large", "backend": "null", "model": "n"},
    ]})
    scorer = TierScorer(config, config.tier("small")).load()
    import uuid

    from cascade.storage.repository import PendingJob

    records = scorer.run([PendingJob(uuid.uuid4(), q.text, list(q.choices)) for q in labelled.questions[:8]])
    assert all(r.p_ik is not None and r.tau_ik == 0.5 for r in records)
    assert all((r.decision == "accepted") == (r.p_ik >= 0.5) for r in records)


def test_a_probe_from_another_model_is_refused(labelled, tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_FEATURES_DIR", str(tmp_path / "features"))
    backend = create_backend(Tier(name="t", backend="transformers", model="tiny:small"))
    backend.load()
    probe, _ = train(collect(backend, labelled, [1]), [1], kind="logistic", model="tiny:small", data_digest="x")
    probe.save(tmp_path / "p.npz")
    config = parse_config({"tiers": [{"name": "other", "backend": "transformers", "model": "tiny:small-b", "probe": str(tmp_path / "p.npz")}]})
    with pytest.raises(ProbeError, match="trained on model 'tiny:small', but this tier runs 'tiny:small-b'"):
        TierScorer(config, config.tier("other")).load()


def test_calibrated_thresholds_are_written_into_the_right_tier(tmp_path):
    from cascade.workers.lab.calibrate_tier import write_thresholds

    path = tmp_path / "c.toml"
    path.write_text('# keep me\n[[tiers]]\nname = "small"\nbackend = "null"\nmodel = "a"\ntau_t = 0.9\n\n'
                    '[[tiers]]\nname = "large"\nbackend = "null"\nmodel = "b"\ntau_t = 0.7\n')
    write_thresholds(path, "small", {"tau_t": 0.85, "tau_ik": 0.42})
    config = load_config(path)
    assert (config.tier("small").tau_t, config.tier("small").tau_ik) == (0.85, 0.42)
    assert config.tier("large").tau_t == 0.7 and path.read_text().startswith("# keep me")


def test_out_of_fold_p_ik_is_honest_where_in_sample_scores_are_optimistic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 300))
    noise = rng.random(240) < 0.5  # labels unrelated to the states
    weights, biases, mean, scale = fit_probe(x, noise, "logistic")
    from cascade.router.probe import probe_from_parts

    in_sample = probe_from_parts("logistic", weights, biases, mean, scale, {}).predict(x)
    assert auroc(in_sample, noise) > 0.75  # a wide probe memorises its own questions
    assert abs(auroc(cross_fitted(x, noise, "logistic"), noise) - 0.5) < 0.1
    signal = x[:, :5].sum(axis=1) + rng.normal(size=240) > 0
    assert auroc(cross_fitted(x, signal, "logistic"), signal) > 0.7

