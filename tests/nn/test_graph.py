"""``nn.to_dot`` and ``nn.draw_graph``: the graph behind a tensor as DOT text and as a picture."""
import re
import shutil

import numpy as np
import pytest

import nn


def small_graph(xp):
    x = nn.Tensor(xp.ones((2, 3), dtype=np.float32), requires_grad=True, name="x")
    w = nn.Tensor(xp.full((3, 4), 0.5, dtype=np.float32), requires_grad=True, name="w")
    h = x @ w
    loss = h.tanh().sum()
    loss.name = "loss"
    return x, w, h, loss


def node_ids(dot, label_start):
    return re.findall(rf'  (\w+) \[label="{re.escape(label_start)}', dot)


def test_dot_text_of_a_known_graph(xp):
    x, w, h, loss = small_graph(xp)
    dot = nn.to_dot(loss)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert r'label="x\n(2, 3) float32"' in dot and r'label="w\n(3, 4) float32"' in dot
    assert r'label="loss\n() float32"' in dot and 'label="(2, 4) float32"' in dot
    (matmul,), (tanh,), (total,) = node_ids(dot, "MatMul"), node_ids(dot, "Tanh"), node_ids(dot, "Sum")
    (tx,), (tw,), (tloss,) = node_ids(dot, "x\\n"), node_ids(dot, "w\\n"), node_ids(dot, "loss\\n")
    th = f"t{id(h)}"
    for edge in (f"{tx} -> {matmul}", f"{tw} -> {matmul}", f"{matmul} -> {th}", f"{th} -> {tanh}",
                 f"{total} -> {tloss}"):
        assert f"  {edge};" in dot, edge
    assert dot.count("->") == 7  # x, w -> MatMul -> h -> Tanh -> (2, 4) -> Sum -> loss
    assert nn.to_dot(x).count("->") == 0  # a leaf alone


def test_drawing_does_not_change_the_graph(xp):
    x, w, h, loss = small_graph(xp)
    nn.to_dot(loss)
    loss.backward()
    expected = (1 - np.tanh(1.5) ** 2) * 0.5 * 4
    np.testing.assert_allclose(nn.to_numpy(x.grad), np.full((2, 3), expected), rtol=1e-6)
    assert nn.to_dot(loss).count("->") == 0  # backward freed the graph


class Halves(nn.Function):
    """Two outputs: the first and the second half of a vector."""

    def forward(self, x):
        n = len(x) // 2
        return x[:n], x[n:]

    def backward(self, g1, g2):
        return nn.get_array_module(g1).concatenate([g1, g2])


def test_an_output_no_longer_held_is_drawn_dashed(xp):
    x = nn.Tensor(xp.ones(4, dtype=np.float32), requires_grad=True)
    first = Halves()(x)[0]  # the second half is dropped at once
    dot = nn.to_dot(first.sum())
    assert dot.count("style=dashed") == 1 and "(2,) float32" in dot
    assert len(re.findall(r"-> f\d+_out1;", dot)) == 1


def test_render_svg(tmp_path, xp):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot binary is not installed (apt-get install graphviz)")
    _, _, _, loss = small_graph(xp)
    path = nn.draw_graph(loss, str(tmp_path / "graph.svg"))
    text = open(path).read()
    assert "<svg" in text and "MatMul" in text and "Tanh" in text
    loss.backward()  # still works after drawing


def test_render_names_the_fix_without_dot(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x = nn.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        nn.draw_graph(x * 2, str(tmp_path / "g.png"))
    with pytest.raises(ValueError, match=".svg"):
        nn.draw_graph(x * 2, str(tmp_path / "g.txt"))
