"""The training loop out of the model (issue 20, item 5): handprop.training, the progress bar as a
callback, the graph Model's ``layers``, and what ``import handprop`` exports."""

import ast
import math
import pathlib
import re

import numpy as np
import pytest
from tqdm.auto import tqdm

import handprop as hp
from handprop import training
from handprop.batches import epoch_batches
from handprop.model import BaseModel

L = hp.layers
REPO = pathlib.Path(__file__).resolve().parents[1]
SRC = pathlib.Path(hp.__file__).parent


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def mlp(seed=0):
    model = hp.Sequential([L.Dense(8), L.ReLU(), L.Dropout(0.2), L.Dense(2)], seed=seed, input_shape=(6,))
    return model.compile(hp.losses.SoftmaxCrossEntropy(), hp.optimizers.Adam(0.01), metrics=["accuracy"])


# ----------------------------------------------------------------------------- the loop
def test_model_fit_is_the_training_module_s_fit():
    x, y = data()
    a, b = mlp(), mlp()
    ha = a.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    hb = training.fit(b, x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert ha.history == hb.history and list(ha.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    for k, w in a.get_weights().items():
        np.testing.assert_array_equal(w, b.get_weights()[k], err_msg=k)
    assert a.evaluate(x, y) == training.evaluate(b, x, y)
    np.testing.assert_array_equal(a.predict(x), training.predict(b, x))


def test_an_epoch_written_out_is_fit_s_epoch():
    """What a student can write from the module docstring gives fit's numbers, bit for bit."""
    x, y = data()
    by_fit, by_hand = mlp(), mlp()
    by_fit.fit(x, y, epochs=2, batch_size=8, verbose=0)
    losses = []
    for epoch in range(2):
        batches = epoch_batches(x, y, epoch=epoch, batch_size=8, rng=by_hand._shuffle_rng, shuffle=True)
        losses.append(training.train_epoch(by_hand, batches).means()["loss"])
    assert losses[1] < losses[0]
    for k, w in by_fit.get_weights().items():
        np.testing.assert_array_equal(w, by_hand.get_weights()[k], err_msg=k)


def test_epoch_batches_of_arrays_and_of_a_source():
    x, y = data(10)
    rows = [xb for xb, _, _ in epoch_batches(x, y, batch_size=4)]
    assert [len(r) for r in rows] == [4, 4, 2] and all(np.shares_memory(r, x) for r in rows)  # in order: views
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    shuffled = list(epoch_batches(x, y, batch_size=4, rng=rng_a, shuffle=True))
    order = rng_b.permutation(10)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in shuffled]), y[order])
    assert all(w is None for _, _, w in shuffled)
    source = [(x[:5], y[:5]), (x[5:], y[5:], np.ones(5))]
    got = list(epoch_batches(source, epoch=3))
    assert len(got) == 2 and got[0][2] is None and got[1][2].shape == (5,)


class Recorder(hp.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen, self.batches = dict(self.params), []

    def on_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))


def test_callbacks_get_keras_params_and_batch_logs():
    x, y = data(20)
    rec = Recorder()
    mlp().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[rec])
    assert rec.seen == {"epochs": 3, "steps": math.ceil(20 / 8), "verbose": 0}
    assert [b["batch"] for b in rec.batches] == [0, 1, 2] * 3 and [b["size"] for b in rec.batches[:3]] == [8, 8, 4]
    assert all(np.isfinite(b["loss"]) for b in rec.batches)


def test_the_progress_bar_is_a_callback_that_prints_only_when_asked(capsys):
    x, y = data(20)
    mlp().fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    mlp().fit(x, y, epochs=2, batch_size=8, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "accuracy=" in out
    bar = hp.callbacks.ProgressBar(verbose=2)
    bar.set_params({"epochs": 5, "steps": 1, "verbose": 2})
    bar.on_epoch_begin(0, {})
    bar.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.25})
    assert capsys.readouterr().out.strip() == "Epoch 1/5 - loss: 0.5000 - val_loss: 0.2500"


class Explodes(hp.callbacks.Callback):
    def on_batch_end(self, batch, logs=None):
        if batch == 1:
            raise RuntimeError("a step failed")


def test_a_failing_step_leaves_no_progress_bar_open(capsys):
    x, y = data(20)
    open_before = len(tqdm._instances)
    error = None
    try:
        mlp().fit(x, y, epochs=2, batch_size=4, verbose=1, callbacks=[Explodes()])
    except RuntimeError as e:
        error = e  # keeps the traceback, so fit's frame and its progress bar stay alive
    assert "a step failed" in str(error)
    assert len(tqdm._instances) == open_before  # the bar was closed, not left to the garbage collector


def test_fit_prints_no_compile_note_and_the_model_holds_no_loop():
    """The background compilation note is gone (kernels say it themselves while they compile);
    the loop lives in training.py, the model's fit only hands over."""
    model_source = (SRC / "model.py").read_text()
    assert "compiling" not in model_source and "tqdm" not in model_source
    fit = ast.parse((SRC / "model.py").read_text())
    body = next(n for n in ast.walk(fit) if isinstance(n, ast.FunctionDef) and n.name == "fit").body
    assert len(body) == 2 and "training.fit" in ast.unparse(body[1])  # docstring, return training.fit(...)


@pytest.mark.parametrize("module", ["model.py", "training.py", "graph.py"])
def test_every_function_is_short(module):
    """A student reads these files: no function longer than 40 lines of code (docstrings aside)."""
    tree = ast.parse((SRC / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            lines = body[-1].end_lineno - body[0].lineno + 1
            assert lines <= 40, f"{module}: {node.name} has {lines} lines"


# ----------------------------------------------------------------------------- checks and registries
def test_softmax_twice_is_caught_for_a_subclass_too():
    class MySoftmax(L.Softmax):
        pass

    model = hp.Sequential([L.Dense(3), MySoftmax()], input_shape=(4,))
    with pytest.raises(ValueError, match="applies softmax and SoftmaxCrossEntropy applies it again"):
        model.compile(hp.losses.SoftmaxCrossEntropy())
    model.compile(hp.losses.MeanSquaredError())  # MSE applies no activation: fine
    assert hp.losses.BinaryCrossEntropy(from_logits=True).applies_activation == "Sigmoid"
    assert hp.losses.BinaryCrossEntropy().applies_activation is None


def test_model_files_name_registered_classes(tmp_path):
    assert hp.saving.MODEL_CLASSES == {"Sequential": hp.Sequential, "Model": hp.Model}

    class Mine(hp.Sequential):  # a subclass is saved as the registered class it extends
        pass

    model = Mine([L.Dense(2)], input_shape=(3,))
    model.save(tmp_path / "m.safetensors")
    back = hp.load_model(tmp_path / "m.safetensors")
    assert type(back) is hp.Sequential
    np.testing.assert_array_equal(back.get_weights()["0.Dense/W"], model.get_weights()["0.Dense/W"])

    class Unwired(BaseModel):
        def _calls(self):
            return []

    with pytest.raises(TypeError, match="expects a handprop Sequential or Model"):
        hp.saving.model_config(Unwired())


# ----------------------------------------------------------------------------- Model.layers
def test_graph_model_layers_each_once_in_topological_order_without_inputs():
    inp = hp.Input((1, None, None))
    conv, relu, shared = L.Conv2D(2, 3, padding="same"), L.ReLU(), L.Conv2D(2, 1)
    a = shared(relu(conv(inp)))
    b = shared(L.Conv2D(2, 3, padding="same")(inp))  # `shared` called twice: listed once
    merged = L.Add()([a, b])
    out = L.Conv2D(1, 1)(merged)
    model = hp.Model(inp, out)
    layers = model.layers
    assert len(layers) == len({id(la) for la in layers}) == 6
    assert all(isinstance(la, L.Layer) for la in layers)  # no Input node
    assert layers == model.layers_list()
    first_calls = []
    for node in model.layer_nodes:  # the calls in the order the graph runs them ...
        if all(node.layer is not la for la in first_calls):
            first_calls.append(node.layer)
    assert layers == first_calls  # ... each layer at its first call
    step = {id(node): i for i, node in enumerate(model.layer_nodes)}
    assert all(step[id(p)] < step[id(node)] for node in model.layer_nodes for p in node.parents if p.layer)
    assert layers[:3] == [conv, relu, shared] and layers[-1] is out.layer
    with pytest.raises(AttributeError):
        model.layers = []


def test_sequential_and_graph_layers_agree_on_a_chain():
    seq_layers = [L.Dense(4), L.ReLU(), L.Dense(2)]
    seq = hp.Sequential(seq_layers, input_shape=(3,))
    inp = hp.Input((3,))
    graph_layers = [L.Dense(4), L.ReLU(), L.Dense(2)]
    node = inp
    for layer in graph_layers:
        node = layer(node)
    graph = hp.Model(inp, node)
    assert seq.layers == seq_layers == seq.layers_list() and graph.layers == graph_layers
    assert [type(la) for la in seq.layers] == [type(la) for la in graph.layers]


# ----------------------------------------------------------------------------- what `import handprop` exports
LAZY = ["architectures", "data", "exercises", "experiments", "inference", "kernels", "schedules", "segmentation",
        "surfaces", "viz"]
INTERNAL = ["importlib", "checks", "batches", "threads", "errors", "graph", "model", "symbolic", "_version", "_LAZY",
            "cli"]


def test_dir_lists_the_public_names_and_the_lazy_subpackages():
    names = dir(hp)
    assert names == sorted(names) and set(LAZY) <= set(names) and "training" in names
    assert not set(INTERNAL) & set(names)
    assert set(hp.__all__) == set(names) - {"__version__"}
    for name in names:  # every listed name resolves (lazy subpackages import on first use)
        assert getattr(hp, name) is not None, name


def test_every_hp_name_the_docs_notebooks_and_code_use_is_listed():
    """``hp.NAME`` in README, the notebooks, the exercises, the experiments and the source."""
    used = set()
    for pattern in ["README.md", "notebooks/**/*.ipynb", "notebooks/**/*.md", "src/handprop/**/*.py",
                    "benchmarks/**/*.py", "docs/**/*.md"]:
        for path in REPO.glob(pattern):
            used |= set(re.findall(r"\bhp\.([A-Za-z_][A-Za-z_0-9]*)\b", path.read_text(errors="ignore")))
    used = {n for n in used if not n.startswith("__")}
    assert {"Sequential", "data", "viz", "layers", "load_model"} <= used  # the scan found the notebooks
    assert sorted(used - set(dir(hp))) == []


def test_the_design_contract_names_resolve():
    for dotted in ["layers.Dense", "layers.Conv2D", "layers.Conv2DTranspose", "layers.BatchNorm",
                   "losses.SoftmaxCrossEntropy",
                   "optimizers.Adam", "Sequential", "Model", "Input", "load_model", "export.to_torch",
                   "callbacks.EarlyStopping", "gradcheck.check_layer", "gradcheck.check_model", "set_engine",
                   "get_engine", "engine", "receptive_field", "viz.plot_trajectories", "data.synthetic_retina",
                   "data.load_drive", "data.split_patients", "metrics.roc_auc", "metrics.dice",
                   "architectures.unet", "segmentation.vessel_unet", "segmentation.predict_probabilities",
                   "set_num_threads", "training.fit"]:
        obj = hp
        for part in dotted.split("."):
            obj = getattr(obj, part)
        assert callable(obj), dotted


def test_recalibrate_batchnorm_sets_the_mean_of_the_batch_statistics():
    model = hp.Sequential([hp.layers.Conv2D(4, 3, padding="same"), hp.layers.BatchNorm(momentum=0.3)], seed=0)
    model.build((2, 8, 8), dtype=np.float64)
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(3, 2, 8, 8)) * (k + 1), None) for k in range(4)]
    weights = {k: v.copy() for k, v in model.layers[0].params.items()}
    assert hp.training.recalibrate_batchnorm(model, batches) == 4
    z = [model.layers[0].forward(x, training=False) for x, _ in batches]
    m = 3 * 8 * 8
    mean = np.mean([zk.mean(axis=(0, 2, 3)) for zk in z], axis=0)
    var = np.mean([zk.var(axis=(0, 2, 3)) * m / (m - 1) for zk in z], axis=0)
    bn = model.layers[1]
    np.testing.assert_allclose(bn.state["running_mean"], mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.state["running_var"], var, rtol=1e-12)
    assert bn.momentum == 0.3
    for k, v in model.layers[0].params.items():
        np.testing.assert_array_equal(weights[k], v)
    assert hp.training.recalibrate_batchnorm(model, iter(batches), max_batches=2) == 2
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        hp.training.recalibrate_batchnorm(hp.Sequential([hp.layers.Dense(2)], input_shape=(3,)), batches)
