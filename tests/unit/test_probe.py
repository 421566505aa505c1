import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from cascade.router.errors import ProbeError
from cascade.router.probe import load_probe, probe_from_parts


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6)) * [1, 2, 3, 1, 1, 5] + 4
    y = (x[:, 0] + 0.5 * x[:, 2] + rng.standard_normal(300) > 5.5).astype(int)
    return x, y


def test_logistic_probe_round_trips_and_matches_scikit_learn(tmp_path, data):
    x, y = data
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression().fit(scaler.transform(x), y)
    probe = probe_from_parts(
        "logistic", [clf.coef_[0]], [clf.intercept_], scaler.mean_, scaler.scale_, {"model": "m", "layer": 3}
    )
    path = tmp_path / "probe.npz"
    probe.save(path)
    loaded = load_probe(path)
    expected = clf.predict_proba(scaler.transform(x))[:, 1]
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-9)
    assert loaded.layer == 3 and loaded.metadata["model"] == "m"


def test_mlp_probe_round_trips_and_matches_scikit_learn(tmp_path, data):
    x, y = data
    scaler = StandardScaler().fit(x)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=500, random_state=0).fit(scaler.transform(x), y)
    probe = probe_from_parts("mlp", clf.coefs_, clf.intercepts_, scaler.mean_, scaler.scale_, {"model": "m", "layer": 1})
    probe.save(tmp_path / "mlp.npz")
    loaded = load_probe(tmp_path / "mlp.npz")
    np.testing.assert_allclose(loaded.predict(x), clf.predict_proba(scaler.transform(x))[:, 1], rtol=1e-7)


def test_probe_from_another_model_layer_or_width_is_refused(tmp_path, data):
    x, y = data
    probe = probe_from_parts("logistic", [np.ones(6)], [np.zeros(1)], np.zeros(6), np.ones(6), {"model": "m", "layer": 2})
    probe.check_compatible(model="m", layer=None, hidden_size=6)
    with pytest.raises(ProbeError, match="trained on model 'm', but this tier runs 'other'"):
        probe.check_compatible(model="other", layer=None, hidden_size=6)
    with pytest.raises(ProbeError, match="trained on layer 2, but the tier is set to layer 5"):
        probe.check_compatible(model="m", layer=5, hidden_size=6)
    with pytest.raises(ProbeError, match="expects hidden size 6"):
        probe.check_compatible(model="m", layer=2, hidden_size=8)


def test_files_that_are_not_probes_are_refused_without_unpickling(tmp_path):
    pickled = tmp_path / "evil.npz"
    np.savez(pickled, metadata=np.array([{"layer": 1}], dtype=object))
    with pytest.raises(ProbeError, match="not a cascade probe file"):
        load_probe(pickled)
    with pytest.raises(ProbeError, match="not found"):
        load_probe(tmp_path / "missing.npz")
