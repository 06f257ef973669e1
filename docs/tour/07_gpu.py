"""07 - The same network on the GPU: ``model.to('gpu')``, inputs follow the model.

What it shows: the toy network of 04, built on the host and moved with ``.to('gpu')`` (PyTorch's
``.to('cuda')`` works too); its inputs are copied to the model's device, and every op then runs
on CuPy arrays through the same code as on the CPU (each op asks its input for the array module).
The first steps' losses are compared with a CPU run of the same weights.

Where there is no GPU (CuPy missing, or no CUDA device), it says so plainly and runs on the CPU.
Under the test suite, ``import cupy`` finds the strict NumPy-backed stand-in tests/strict_device/cupy:
the GPU code path then runs for real (with CuPy's refusal of host/device mixing), without a GPU's
speed, and the script says that too, with the kernel launches the stand-in counted.

    python3 docs/tour/07_gpu.py [OUT]
"""
import numpy as np

import nn.functional as F
from _tour import nn, output_folder, toy_network, toy_problem

output_folder()  # nothing to draw: the device and the losses are the result
stand_in = False
try:
    device = nn.check_device("gpu")
    import cupy
    stand_in = "stand-in" in getattr(cupy, "__version__", "")  # the stand-in's version says what it is
    if stand_in:
        print("CuPy here is the strict NumPy-backed stand-in (tests/strict_device/cupy), not a GPU: "
              "the GPU code path runs, on the CPU")
    else:
        print(f"GPU found: CuPy {cupy.__version__}, {cupy.cuda.runtime.getDeviceCount()} device(s)")
except nn.DeviceError as error:
    device = "cpu"
    print(f"No GPU here ({error}); running on the CPU instead")


def losses_on(device, steps=20):
    nn.random.seed(0)                                   # the same initial weights on both devices
    model = toy_network().to(device)                    # moved in place; returns the model
    optimizer = nn.optim.Adam(model.parameters(), lr=1e-2)
    x, y = (nn.Tensor(nn.to_device(a, model.device)) for a in toy_problem())  # inputs follow the model
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss)                             # kept on the device: no synchronisation per step
    print(f"model on {model.device}: first parameter {type(model.parameters()[0].data).__module__}."
          f"{type(model.parameters()[0].data).__name__}, loss after {steps} steps {losses[-1].item():.6f}")
    return np.array([loss.item() for loss in losses])   # read back once, at the end


if stand_in:
    cupy.reset_counts()
on_device = losses_on(device)
if stand_in:
    print(f"the stand-in counted {cupy.counts()['launches']} kernel launches for 20 training steps")
if device == "cpu":
    raise SystemExit(0)  # nothing to compare with
on_cpu = losses_on("cpu")
print(f"largest difference between the {device} and the cpu losses: {np.abs(on_device - on_cpu).max():.1e} "
      "(float32: different kernels may round differently)")
assert np.allclose(on_device, on_cpu, rtol=1e-4, atol=1e-6)
