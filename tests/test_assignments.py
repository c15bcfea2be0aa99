"""Assignments and the autograder: each checker accepts the worked solution, names each typical
mistake, rejects an answer that calls the library; `grade` reports unsolved tasks on the lessons
and full marks on the solutions; the student release holds no solution code."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

import handprop as hp
from handprop.exercises import autograder, grading, tasks
from handprop.exercises.batchnorm import check_bn_backward, check_bn_backward_alt, check_bn_forward, check_bn_spatial
from handprop.exercises.im2col import check_conv_backward_im2col, check_conv_forward_im2col, check_im2col
from handprop.exercises.pooling import (
    check_avgpool_backward,
    check_avgpool_forward,
    check_maxpool_backward,
    check_maxpool_forward,
)
from handprop.layers import normalization

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebook_build_a", ROOT / "notebooks" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def solutions(stem):
    """The worked solutions of an assignment source, executed here: {name: object}."""
    cells = build.parse_source(build.ASSIGNMENT_SOURCES / f"{stem}.py")
    namespace = {}
    for cell in cells:
        if cell.cell_type == "code" and "exercise" not in build._tags(cell) and "check" not in build._tags(cell):
            exec(compile(cell.source, stem, "exec"), namespace)
    return namespace


def assert_rejected(result, *phrases):
    text = str(result)
    assert not result and text.startswith("NOT YET"), text
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in:\n{text}"


# -- the pure pair ---------------------------------------------------------------------------------
def test_batchnorm_pair_inference_uses_running_statistics_and_is_the_layers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4, 4))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    y, cache = normalization.batchnorm_forward(x, gamma, beta, 1e-5, mean, var)
    b = (1, 3, 1, 1)
    np.testing.assert_allclose(y, (x - mean.reshape(b)) / np.sqrt(var.reshape(b) + 1e-5) * gamma.reshape(b)
                               + beta.reshape(b), rtol=1e-12)
    dy = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = normalization.batchnorm_backward(dy, cache)
    np.testing.assert_allclose(dx, dy * gamma.reshape(b) / np.sqrt(var.reshape(b) + 1e-5), rtol=1e-12)
    layer = hp.layers.BatchNorm()
    layer.build((3, 4, 4), dtype=np.float64)
    layer.params.update(gamma=gamma, beta=beta)
    y_layer = layer.forward(x)
    y_pair, cache = normalization.batchnorm_forward(x, gamma, beta, layer.eps)
    np.testing.assert_array_equal(y_layer, y_pair)
    np.testing.assert_array_equal(layer.backward(dy), normalization.batchnorm_backward(dy, cache)[0])
    assert layer.backward(dy, need_dx=False) is None and layer.grads["gamma"].shape == (3,)


# -- A1 batch norm -------------------------------------------------------------------------------------
A1 = solutions("A1_batchnorm")


def test_batchnorm_solutions_pass():
    assert check_bn_forward(A1["batchnorm_forward"])
    assert check_bn_backward(A1["batchnorm_forward"], A1["batchnorm_backward"])
    assert check_bn_backward_alt(A1["batchnorm_forward"], A1["batchnorm_backward_alt"])
    assert check_bn_spatial(A1["spatial_batchnorm_forward"])


def _bn_forward_with(**switches):
    from handprop.exercises.batchnorm import _forward_with

    return lambda x, gamma, beta, eps=1e-5: (_forward_with(x, gamma, beta, **switches), None)


@pytest.mark.parametrize("switches, phrase", [
    ({"ddof": 1}, "biased"), ({"eps_outside": True}, "inside the square root"), ({"no_eps": True}, "eps was left out"),
    ({"axis": 1}, "layer norm"), ({"affine": False}, "scale and shift are missing"), ({"swap": True}, "swaps them"),
])
def test_bn_forward_names_each_mistake(switches, phrase):
    assert_rejected(check_bn_forward(_bn_forward_with(**switches)), phrase)


def _bn_backward_with(**switches):
    from handprop.exercises.batchnorm import _backward_with

    def forward(x, gamma, beta, eps=1e-5):
        return A1["batchnorm_forward"](x, gamma, beta, eps)[0], (x, gamma)

    def backward(dy, cache):
        x, gamma = cache
        return _backward_with(x, gamma, dy, **switches)

    return forward, backward


@pytest.mark.parametrize("switches, phrase", [
    ({"mean_path": False, "var_path": False}, "as constants"), ({"var_path": False}, "through the variance"),
    ({"mean_path": False}, "through the mean"), ({"use_gamma": False}, "gamma is missing"),
    ({"swap": True}, "swapped"), ({"db_mean": True}, "not averaged"),
])
def test_bn_backward_names_each_mistake(switches, phrase):
    assert_rejected(check_bn_backward(*_bn_backward_with(**switches)), phrase)


def test_bn_backward_other_mistakes():
    forward = A1["batchnorm_forward"]

    def per_sample(dy, cache):
        dx, dgamma, dbeta = A1["batchnorm_backward"](dy, cache)
        return dx, dy * cache[2], dbeta

    def writes_dy(dy, cache):
        out = A1["batchnorm_backward"](dy.copy(), cache)
        dy *= 2
        return out

    def alt_calls_naive(dy, cache):
        return batchnorm_backward(dy, cache)  # noqa: F821 (never run: the checker reads the source)

    assert_rejected(check_bn_backward(forward, per_sample), "one value per sample")
    assert_rejected(check_bn_backward(forward, writes_dy), "changed dy")
    assert_rejected(check_bn_backward(_bn_forward_with(ddof=1), A1["batchnorm_backward"]), "fix the forward first")
    assert_rejected(check_bn_backward_alt(forward, alt_calls_naive), "calls batchnorm_backward")


@pytest.mark.parametrize("switches, phrase", [
    ({"axes": (0,)}, "per channel over N, H and W"), ({"plain_reshape": True}, "mixes channels"),
    ({"axes": (1, 2, 3)}, "each image"),
])
def test_bn_spatial_names_each_mistake(switches, phrase):
    from handprop.exercises.batchnorm import _spatial_with

    assert_rejected(check_bn_spatial(lambda x, g, b, eps=1e-5: (_spatial_with(x, g, b, **switches), None)), phrase)


def test_an_answer_that_calls_the_library_is_rejected():
    def lib_forward(x, gamma, beta, eps=1e-5):
        return normalization.batchnorm_forward(x, gamma, beta, eps)

    def lib_backward(dy, cache):
        return normalization.batchnorm_backward(dy, cache)

    def layer_forward(x, gamma, beta, eps=1e-5):
        layer = hp.layers.BatchNorm(eps=eps)
        layer.build(x.shape[1:], dtype=np.float64)
        return layer.forward(x), layer

    assert_rejected(check_bn_forward(lib_forward), "switched off")
    assert_rejected(check_bn_forward(layer_forward), "switched off")  # through the layer too
    assert_rejected(check_bn_backward(A1["batchnorm_forward"], lambda dy, c: lib_backward(dy, c)), "switched off")

    def pool_by_library(x, pool, stride):
        return hp.kernels.reference.maxpool2d_forward(x, hp.kernels.geometry.PoolGeometry((pool, pool),
                                                                                         (stride, stride)))

    def pool_by_layer(x, pool, stride):
        with hp.engine("numpy"):
            return hp.layers.MaxPool2D(pool, stride).forward(x), None

    assert_rejected(check_maxpool_forward(pool_by_library), "switched off")
    assert_rejected(check_maxpool_forward(pool_by_layer), "switched off")
    # outside the student's call the library works again
    x = np.ones((2, 3))
    assert normalization.batchnorm_forward(x, np.ones(3), np.zeros(3))[0].shape == (2, 3)


def test_disabled_restores_inherited_methods_and_passes_library_calls():
    opt = hp.optimizers.SGD(lr=0.1)
    assert "step" not in vars(hp.optimizers.SGD)
    with grading.disabled(("handprop.optimizers:SGD.step", "handprop.no_such_module:f")):
        p = {"w": np.ones(2)}
        opt.step(p, {"w": np.ones(2)})  # the library (not a student) calls it: works
        assert np.allclose(p["w"], 0.9)
        with pytest.raises(grading.LibraryDisabled, match="SGD.step is switched off"):
            grading.as_student(lambda: opt.step(p, {"w": np.ones(2)}))()
    assert "step" not in vars(hp.optimizers.SGD)


# -- A2 pooling ------------------------------------------------------------------------------------------
A2 = solutions("A2_pooling")


def test_pooling_solutions_pass():
    assert check_maxpool_forward(A2["maxpool_forward"])
    assert check_maxpool_backward(A2["maxpool_forward"], A2["maxpool_backward"])
    assert check_avgpool_forward(A2["avgpool_forward"])
    assert check_avgpool_backward(A2["avgpool_forward"], A2["avgpool_backward"])


@pytest.mark.parametrize("kind, mode, phrase", [
    ("max", "ties", "tied maxima"), ("max", "overwrite", "accumulate with +="), ("max", "all", "only the pixel"),
    ("max", "divided", "average pooling's backward"), ("avg", "undivided", "dy / (pool * pool)"),
    ("avg", "overwrite", "accumulate with +="),
])
def test_pool_backward_names_each_mistake(kind, mode, phrase):
    from handprop.exercises.pooling import _backward_with

    forward = A2[f"{kind}pool_forward"]

    def fwd(x, pool, stride):
        return forward(x, pool, stride)[0], (x, pool, stride)

    def backward(dy, cache):
        x, pool, stride = cache
        return _backward_with(kind, x, dy, pool, stride, mode)

    check = check_maxpool_backward if kind == "max" else check_avgpool_backward
    assert_rejected(check(fwd, backward), phrase)


def test_pool_forward_mistakes():
    assert_rejected(check_maxpool_forward(A2["avgpool_forward"]), "the mean of each window")
    assert_rejected(check_avgpool_forward(lambda x, p, s: (A2["avgpool_forward"](x, p, s)[0] * p * p, None)),
                    "the sum of each window")
    assert_rejected(check_avgpool_forward(A2["maxpool_forward"]), "the largest value")
    assert_rejected(check_maxpool_forward(lambda x, p, s: (x[:, :, ::s, ::s], None)), "expected")
    assert_rejected(check_maxpool_backward(A2["avgpool_forward"], A2["maxpool_backward"]), "fix the forward first")


# -- A3 im2col ---------------------------------------------------------------------------------------------
A3 = solutions("A3_im2col")


def test_im2col_solutions_pass():
    assert check_im2col(A3["im2col"])
    assert check_conv_forward_im2col(A3["conv_forward_im2col"])
    assert check_conv_backward_im2col(A3["conv_forward_im2col"], A3["conv_backward_im2col"])


def test_im2col_mistakes():
    def reorder(*axes):
        def wrong(x, R, S, stride, pad):
            cols = A3["im2col"](x, R, S, stride, pad)
            N, C = x.shape[:2]
            Ho = (x.shape[2] + 2 * pad - R) // stride + 1
            Wo = (x.shape[3] + 2 * pad - S) // stride + 1
            return cols.reshape(C, R, S, N, Ho, Wo).transpose(*axes).reshape(cols.shape)
        return wrong

    assert_rejected(check_im2col(reorder(1, 2, 0, 3, 4, 5)), "rows ordered (r, s, c)")
    assert_rejected(check_im2col(reorder(0, 1, 2, 4, 5, 3)), "columns ordered (i, j, n)")
    assert_rejected(check_im2col(lambda x, R, S, stride, pad: A3["im2col"](x, R, S, stride, pad).T), "transposed")
    assert_rejected(check_im2col(lambda x, R, S, stride, pad: A3["im2col"](x, R, S, stride, 0)), "pad the input")


def test_conv_im2col_mistakes():
    fwd = A3["conv_forward_im2col"]

    def no_bias(x, W, b, stride, pad):
        return fwd(x, W, np.zeros_like(b), stride, pad)

    def flipped(x, W, b, stride, pad):
        return fwd(x, W[:, :, ::-1, ::-1].copy(), b, stride, pad)

    def plain_reshape(x, W, b, stride, pad):
        y, cache = fwd(x, W, b, stride, pad)
        return y.transpose(1, 0, 2, 3).reshape(y.shape), cache

    assert_rejected(check_conv_forward_im2col(no_bias), "bias is missing")
    assert_rejected(check_conv_forward_im2col(flipped), "flipped")
    assert_rejected(check_conv_forward_im2col(plain_reshape), "transpose(1, 0, 2, 3)")

    bwd = A3["conv_backward_im2col"]

    def averaged(dy, cache):
        dx, dW, db = bwd(dy, cache)
        return dx, dW / dy.shape[0], db

    def flipped_dx(dy, cache):
        shape, W, cols, stride, pad = cache
        dx = bwd(dy, (shape, W[:, :, ::-1, ::-1].copy(), cols, stride, pad))[0]
        return dx, *bwd(dy, cache)[1:]

    def overwrite(dy, cache):
        from handprop.exercises.im2col import _col2im_overwrite

        shape, W, cols, stride, pad = cache
        K = W.shape[0]
        dcols = W.reshape(K, -1).T @ dy.transpose(1, 0, 2, 3).reshape(K, -1)
        return _col2im_overwrite(dcols, shape, W.shape[2], W.shape[3], stride, pad), *bwd(dy, cache)[1:]

    def db_per_image(dy, cache):
        dx, dW, db = bwd(dy, cache)
        return dx, dW, dy.sum(axis=(2, 3))

    assert_rejected(check_conv_backward_im2col(fwd, averaged), "averaged over the batch")
    assert_rejected(check_conv_backward_im2col(fwd, flipped_dx), "flipped")
    assert_rejected(check_conv_backward_im2col(fwd, overwrite), "add the columns back")
    assert_rejected(check_conv_backward_im2col(fwd, db_per_image), "db has shape")


# -- the registry, the autograder, the student release --------------------------------------------------------
def test_every_check_cell_is_a_registered_task():
    """Each checker cell of every source calls the checker of a task of that notebook, with its names."""
    seen = set()
    for source in build.sources():
        for cell in build.parse_source(source):
            if "check" not in build._tags(cell):
                continue
            match = re.fullmatch(r"hp\.exercises\.(\w+)\(([\w, ]*)\)", cell.source.strip())
            assert match, cell.source
            function, names = match[1], tuple(n.strip() for n in match[2].split(","))
            found = [t for t in tasks.tasks_of(source.stem)
                     if t.check.endswith(":" + function) and t.names == names]
            assert len(found) == 1, f"{source.name}: no task for {cell.source!r}"
            seen.add(found[0].id)
    assert seen == {t.id for t in tasks.TASKS}
    assert len({t.id for t in tasks.TASKS}) == len(tasks.TASKS)
    for task in tasks.TASKS:
        assert callable(task.checker()) and task.points > 0
        for target in task.disables:
            module, _, path = target.partition(":")
            if "numba" in module and importlib.util.find_spec("numba") is None:
                continue
            owner, attr = grading._resolve(target)
            assert hasattr(owner, attr), target


def test_list_shows_every_task(capsys):
    assert autograder.main(["list"]) == 0
    out = capsys.readouterr().out
    for task in tasks.TASKS:
        assert task.id in out
    assert f"{sum(t.points for t in tasks.TASKS)} points" in out


def test_notebook_ids():
    assert tasks.notebook_of_name("smith_A1_batchnorm") == "A1_batchnorm"
    assert tasks.notebook_of_name("03_convolutional_networks_solutions") == "03_convolutional_networks"
    assert tasks.notebook_of_name("untitled") is None


def test_student_release_has_no_solution_code(tmp_path):
    written = build.write_student_release(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"assignments/A1_batchnorm.ipynb", "03_convolutional_networks.ipynb"} <= names
    assert not any("solution" in name for name in names)
    assert not list(tmp_path.rglob("*solutions*"))
    nbformat = pytest.importorskip("nbformat")
    total = 0
    for path, source in zip(written, build.sources(), strict=True):
        secrets = build.solution_code(build.parse_source(source))  # lines only the solution cells hold
        total += len(secrets)
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["handprop"]["notebook"] == path.stem == source.stem
        lines = {line.strip() for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()}
        leaked = secrets & lines
        assert not leaked, f"{path.name}: {sorted(leaked)[:3]}"
        assert not any("solution" in build._tags(c) for c in nb.cells)
    assert total > 100


def _grade(capsys, *args):
    code = autograder.main(["grade", *args, "--quick", "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
@pytest.mark.notebooks
def test_grade_lessons_reports_unsolved_and_solutions_get_full_marks(capsys, tmp_path):
    code, lessons = _grade(capsys, str(build.ASSIGNMENTS))
    assert code == 1 and lessons["failed"]
    results = [r for rs in lessons["results"].values() for r in rs]
    assert {r["task"] for r in results} == {t.id for t in tasks.TASKS if t.notebook.startswith("A")}
    assert not any(r["passed"] for r in results)
    assert all(r["status"] == "unsolved" for r in results)
    assert all("not written yet" in r["mistake"] for r in results if r["task"] != "cnn")
    assert [r["mistake"] for r in results if r["task"] == "cnn"] == [
        "cnn is at chance level: it is not trained yet (write Tasks 1-4, then run the training cell)"]

    code, chapter = _grade(capsys, str(build.HERE / "03_convolutional_networks.ipynb"))  # a lesson of the course
    assert code == 1
    results = [r for rs in chapter["results"].values() for r in rs]
    assert [r["task"] for r in results] == ["ch3_output_size", "ch3_conv2d_backward", "ch3_receptive_field"]
    assert all(r["status"] == "unsolved" and "not written yet" in r["mistake"] for r in results)

    # a folder of solutions: every assignment task passes, with full marks
    folder = tmp_path / "submissions"
    folder.mkdir()
    for source in build.sources("A")[:5]:  # the project (A6) trains a U-Net: tests/test_tasks.py grades it
        path = build.SOLUTIONS / f"{source.stem}_solutions.ipynb"
        (folder / f"student1_{source.stem}.ipynb").write_text(path.read_text())
    # one that calls the library, one that crashes, one that is not a notebook
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(build.SOLUTIONS / "A2_pooling_solutions.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.source.startswith("def maxpool_forward"):
            cell.source = ("def maxpool_forward(x, pool, stride):\n"
                           "    g = hp.kernels.geometry.PoolGeometry((pool, pool), (stride, stride))\n"
                           "    return hp.kernels.reference.maxpool2d_forward(x, g)")
        if cell.source.startswith("def avgpool_backward"):
            cell.source = "def avgpool_backward(dy, cache):\n    return undefined_name"
    nbformat.write(nb, folder / "student2_A2_pooling.ipynb")
    (folder / "student3_A1_batchnorm.ipynb").write_text("not json")
    code = autograder.main(["grade", str(folder), "--quick", "--json"])
    graded = json.loads(capsys.readouterr().out)["results"]
    assert code == 1
    by_file = {Path(f).name: {r["task"]: r for r in rs} for f, rs in graded.items()}
    for stem in ("A1_batchnorm", "A2_pooling", "A3_im2col", "A4_training_loop", "A5_update_rules"):
        assert all(r["passed"] and r["earned"] == r["points"] for r in by_file[f"student1_{stem}.ipynb"].values())
    student2 = by_file["student2_A2_pooling.ipynb"]
    assert not student2["maxpool_forward"]["passed"] and "switched off" in student2["maxpool_forward"]["mistake"]
    assert student2["maxpool_backward"]["passed"] is False  # its forward is not the student's
    assert "NameError" in student2["avgpool_backward"]["feedback"]
    assert "Traceback" not in json.dumps(graded)
    assert all("could not be read" in r["mistake"] for r in by_file["student3_A1_batchnorm.ipynb"].values())
    table = autograder.format_table({f: rs for f, rs in graded.items() if "student2" in f})
    assert "maxpool_forward" in table and "switched off" in table and "total: " in table


# -- A5 update rules ----------------------------------------------------------------------------------------
A5 = solutions("A5_update_rules")


def test_update_rule_solutions_pass():
    from handprop.exercises import check_adagrad_step, check_nesterov_step, check_rmsprop_step

    assert check_nesterov_step(A5["nesterov_step"])
    assert check_rmsprop_step(A5["rmsprop_step"])
    assert check_adagrad_step(A5["adagrad_step"])

    def sutskever_free_form(w, dw, state, lr, momentum):  # the same walk, written in place
        state.setdefault("v", np.zeros_like(w))
        state["v"] *= momentum if state.get("t") else 0.0
        state["t"] = 1
        state["v"] += dw
        w -= lr * (dw + momentum * state["v"])
        return w

    assert check_nesterov_step(sutskever_free_form)


@pytest.mark.parametrize("check, table", [("check_nesterov_step", "NESTEROV_MISTAKES"),
                                          ("check_rmsprop_step", "RMSPROP_MISTAKES"),
                                          ("check_adagrad_step", "ADAGRAD_MISTAKES")])
def test_update_rules_name_each_mistake(check, table):
    from handprop.exercises import update_rules

    for wrong, hint in getattr(update_rules, table):
        assert_rejected(getattr(update_rules, check)(wrong), hint)


def test_update_rules_reject_the_library_and_writing_into_dw():
    from handprop.exercises import check_adagrad_step, check_rmsprop_step

    def by_library(w, dw, state, lr, alpha, eps):
        opt = state.setdefault("opt", hp.optimizers.RMSprop(lr=lr, alpha=alpha, eps=eps))
        p = {"w": w}
        opt.step(p, {"w": dw})
        return p["w"]

    def writes_dw(w, dw, state, lr, eps):
        dw **= 2
        return w

    assert_rejected(check_rmsprop_step(by_library), "switched off")
    assert_rejected(check_adagrad_step(writes_dw), "wrote into dw")


# -- A4 the training loop ------------------------------------------------------------------------------------



def _a4():
    cells = build.parse_source(build.ASSIGNMENT_SOURCES / "A4_training_loop.py")
    namespace = {}
    for cell in cells:
        if "solution" in build._tags(cell) and cell.source.startswith("def "):
            exec(compile(cell.source, "A4", "exec"), namespace)
    namespace["np"] = np
    return namespace


def test_training_loop_solutions_pass():
    from handprop.exercises import check_evaluate, check_minibatches, check_train, check_train_step

    a4 = _a4()
    assert check_minibatches(a4["minibatches"])
    assert check_train_step(a4["train_step"])
    assert check_evaluate(a4["evaluate"])
    assert check_train(a4["minibatches"], a4["train"])


def test_training_loop_mistakes():
    from handprop.exercises import check_cnn, check_evaluate, check_minibatches, check_train, check_train_step

    a4 = _a4()
    assert_rejected(check_minibatches(lambda n, b, rng: [rng.integers(0, n, b) for _ in range(0, n, b)]),
                    "no draws with replacement")
    assert_rejected(check_minibatches(lambda n, b, rng: [np.arange(n)[i: i + b] for i in range(0, n, b)]), "shuffle")
    def drops_last(n, b, rng):
        order = rng.permutation(n)
        return [order[i: i + b] for i in range(0, n - b + 1, b)]

    assert_rejected(check_minibatches(drops_last), "keep the last, smaller batch")
    assert_rejected(check_minibatches(lambda n, b, rng: a4["minibatches"](n, b, np.random.default_rng(0))),
                    "new permutation from rng at every call")
    assert_rejected(check_minibatches(lambda n, b, rng: np.array_split(np.random.permutation(n), range(b, n, b))),
                    "not from np.random's global state")

    def no_step(model, loss, optimizer, xb, yb):
        value = loss.forward(model.forward(xb), yb)
        model.backward(loss.backward())
        return value

    def inference_forward(model, loss, optimizer, xb, yb):
        value = loss.forward(model.forward(xb, training=False), yb)
        model.backward(loss.backward())
        optimizer.step(model.trainable_params(), model.named_grads())
        return value

    def by_library(model, loss, optimizer, xb, yb):
        model.compile(loss=loss, optimizer=optimizer)
        return model.train_on_batch(xb, yb)

    assert_rejected(check_train_step(no_step), "optimizer.step")
    assert_rejected(check_train_step(inference_forward), "training=True")
    assert_rejected(check_train_step(by_library), "switched off")

    def eval_training(model, loss, x, y, batch_size):
        pred = model.forward(x, training=True)
        return loss.forward(pred, y), float(np.mean(np.argmax(pred, 1) == y))

    def eval_unweighted(model, loss, x, y, batch_size):
        values, correct = [], 0
        for i in range(0, len(x), batch_size):
            pred = model.forward(x[i: i + batch_size], training=False)
            values.append(loss.forward(pred, y[i: i + batch_size]))
            correct += int(np.sum(np.argmax(pred, 1) == y[i: i + batch_size]))
        return float(np.mean(values)), correct / len(x)

    assert_rejected(check_evaluate(eval_training), "training=False")
    assert_rejected(check_evaluate(eval_unweighted), "over-weighs the small last batch")

    def train_reseeding(model, loss, optimizer, x, y, x_val, y_val, epochs, batch_size, seed):
        history = {"loss": [], "val_loss": [], "val_accuracy": []}
        for _ in range(epochs):
            rng = np.random.default_rng(seed)
            total = 0.0
            for idx in a4["minibatches"](len(x), batch_size, rng):
                total += a4["train_step"](model, loss, optimizer, x[idx], y[idx]) * len(idx)
            history["loss"].append(total / len(x))
            for key, value in zip(("val_loss", "val_accuracy"), a4["evaluate"](model, loss, x_val, y_val, batch_size)):
                history[key].append(value)
        return history

    def train_no_validation(*args):
        history = a4["train"](*args)
        del history["val_loss"]
        return history

    assert_rejected(check_train(a4["minibatches"], train_reseeding), "the same batches every epoch")
    assert_rejected(check_train(a4["minibatches"], train_no_validation), "'val_loss'")

    untrained = hp.Sequential([hp.layers.Flatten(), hp.layers.Dense(10)], seed=0)
    untrained.build((1, 8, 8))
    assert_rejected(check_cnn(untrained), "accuracy on the", "not trained yet")
    assert_rejected(check_cnn(42), "not a model")


# -- A6 the project -------------------------------------------------------------------------------------------
def _oracle(seed):
    """A segment() that knows the patients of ``seed`` (AUC 1 there, chance elsewhere)."""
    from handprop.exercises import project

    truth = project.test_patients(seed)

    def segment(images):
        if np.array_equal(images, truth.images):
            return truth.vessels.astype(np.float32)
        return np.random.default_rng(0).random(images.shape[:1] + images.shape[2:])
    return segment


def test_project_grades_on_the_hidden_seed(monkeypatch):
    from handprop.exercises import check_project, project

    monkeypatch.delenv("HANDPROP_GRADE_SEED", raising=False)
    result = check_project(_oracle(project.PRACTICE_SEED))
    assert result and "practice patients" in str(result) and result.scores["auc"] == pytest.approx(1.0)
    monkeypatch.setenv("HANDPROP_GRADE_SEED", "4242")
    assert_rejected(check_project(_oracle(project.PRACTICE_SEED)), "hidden test patients", "AUC of at least")
    result = check_project(_oracle(4242))
    assert result and result.scores["auc"] == pytest.approx(1.0) and result.scores["dice"] == pytest.approx(1.0)
    monkeypatch.setenv("HANDPROP_GRADE_SEED", "x")
    with pytest.raises(ValueError, match="must be an integer"):
        project.grade_seed()


def test_project_names_the_mistakes(monkeypatch):
    from handprop.exercises import check_project, project

    monkeypatch.delenv("HANDPROP_GRADE_SEED", raising=False)
    oracle = _oracle(project.PRACTICE_SEED)
    assert_rejected(check_project(lambda images: 1 - oracle(images)), "high on the background")
    assert_rejected(check_project(lambda images: oracle(images)[:, None]), "drop the channel axis")
    assert_rejected(check_project(lambda images: np.zeros(images.shape[:1] + images.shape[2:])), "constant")
    assert_rejected(check_project(lambda images: -images[:, 1]), "probabilities in [0, 1]")
    assert_rejected(check_project(lambda images: 1 - images[:, 1]), "above the green channel")
    assert_rejected(check_project(lambda images: None), "returned None")


def test_leaderboard_ranks_by_auc():
    graded = {"a.ipynb": [{"file": "a.ipynb", "task": "project", "scores": {"auc": 0.8, "dice": 0.5}}],
              "b.ipynb": [{"file": "b.ipynb", "task": "project", "scores": {"auc": 0.9, "dice": 0.4}},
                          {"file": "b.ipynb", "task": "cnn", "scores": {"accuracy": 0.95}}]}
    rows = autograder.leaderboard(graded)
    assert [r[0] for r in rows] == ["b.ipynb", "a.ipynb"]


def test_run_task_switches_the_library_off_for_chapter_exercises_too():
    """The chapter checkers are not changed: the grader's run_task switches the library off around them."""
    def conv2d_backward(dy, x, W, stride):
        from handprop.kernels import reference
        from handprop.kernels.geometry import ConvGeometry

        geometry = ConvGeometry((stride, stride), (0, 0), (1, 1))
        _, cache = reference.conv2d_forward(x, W, np.zeros(W.shape[0]), geometry)
        return reference.conv2d_backward(dy, cache)

    def momentum_step(w, dw, state, lr, momentum):
        opt = state.setdefault("opt", hp.optimizers.SGD(lr=lr, momentum=momentum))
        p = {"w": w}
        opt.step(p, {"w": dw})
        return p["w"]

    for task_id, name, answer in [("ch3_conv2d_backward", "conv2d_backward", conv2d_backward),
                                  ("ch2_momentum_step", "momentum_step", momentum_step)]:
        task = tasks.task_by_id(task_id)
        assert task.checker()(answer), "outside the grader the library answer passes the checker"
        result = grading.run_task(task, {name: answer})
        assert not result["passed"] and result["earned"] == 0 and "switched off" in result["feedback"], result
    missing = grading.run_task(tasks.task_by_id("ch3_output_size"), {})
    assert missing["status"] == "unsolved" and "`output_size` is not defined" in missing["mistake"]
