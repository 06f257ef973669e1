"""See the graph behind a tensor: Graphviz DOT text, and pictures drawn by Graphviz's ``dot``.

As DeZero's ``plot_dot_graph`` and micrograd's ``draw_dot``: starting at a tensor, the walk goes
through each op that made a tensor (``tensor.creator``) to the op's inputs, and so on back to the
leaves. Tensors are ellipses labelled with their name (if any), shape and dtype; ops are boxes
labelled with their class; edges run input -> op -> output. An op holds its outputs by weak
reference (nn/function.py): an output that no longer exists is drawn dashed, from the shape and
dtype the op recorded. A graph already freed by ``backward()`` (without ``retain_graph=True``)
shows only the tensor itself. Drawing reads the graph and changes nothing in it.

    print(nn.to_dot(loss))                 # DOT text
    nn.draw_graph(loss, "graph.svg")       # or .png, .pdf: needs the dot binary (apt-get install graphviz)
"""
import os
import shutil
import subprocess

from .errors import SetupError


def _tensor_node(node_id, name, shape, dtype, style=""):
    label = (f"{name}\\n".replace('"', '\\"') if name else "") + f"{tuple(shape)} {dtype}"
    return f'  {node_id} [label="{label}", shape=ellipse{style}];'


def _op_label(fn):
    name = type(fn).__name__
    return name[:-len("Function")] if name.endswith("Function") and name != "Function" else name


def to_dot(tensor, show_dtype=True):
    """The graph that produced ``tensor`` as Graphviz DOT text (a ``digraph``).

    Args:
        tensor: the output whose history is drawn (a loss, an activation).
        show_dtype: put the dtype beside each tensor's shape.
    """
    lines, seen_tensors, seen_ops = [], set(), set()

    def dtype_of(dtype):
        return str(dtype) if show_dtype else ""

    def add_tensor(t):
        if id(t) not in seen_tensors:
            seen_tensors.add(id(t))
            lines.append(_tensor_node(f"t{id(t)}", t.name, t.shape, dtype_of(t.dtype)))

    add_tensor(tensor)
    pending = [tensor.creator] if tensor.creator is not None else []
    while pending:
        fn = pending.pop()
        if id(fn) in seen_ops:
            continue
        seen_ops.add(id(fn))
        lines.append(f'  f{id(fn)} [label="{_op_label(fn)}", shape=box, style=filled, fillcolor=lightgrey];')
        for x in fn.inputs:
            add_tensor(x)
            lines.append(f"  t{id(x)} -> f{id(fn)};")
            if x.creator is not None:
                pending.append(x.creator)
        for i, (ref, (shape, dtype)) in enumerate(zip(fn.outputs, fn.output_specs)):
            out = ref()
            if out is None:  # freed: drawn from what the op recorded
                node = f"f{id(fn)}_out{i}"
                lines.append(_tensor_node(node, None, shape, dtype_of(dtype), ", style=dashed"))
            else:
                add_tensor(out)
                node = f"t{id(out)}"
            lines.append(f"  f{id(fn)} -> {node};")
    return "digraph graph_of_tensor {\n  rankdir=LR;\n" + "\n".join(lines) + "\n}\n"


def render(dot_text, path):
    """Write ``dot_text`` as a picture at ``path``; its extension (.svg, .png, .pdf) picks the format.

    Calls the ``dot`` binary of Graphviz; raises RuntimeError naming the fix where it is missing.
    """
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"draw_graph: cannot tell the format of {path!r}; end it with .svg, .png or .pdf")
    dot = shutil.which("dot")
    if dot is None:
        raise SetupError("draw_graph needs Graphviz's dot binary, which is not installed: "
                           "apt-get install graphviz (or use nn.to_dot for the DOT text)")
    result = subprocess.run([dot, f"-T{fmt}", "-o", path], input=dot_text.encode(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"dot could not draw {path}: {result.stderr.decode().strip()}")
    return path


def draw_graph(tensor, path, show_dtype=True):
    """Draw the graph that produced ``tensor`` into ``path`` (.svg, .png or .pdf); returns ``path``."""
    return render(to_dot(tensor, show_dtype), path)
