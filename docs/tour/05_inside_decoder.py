"""05 - Inside the shipped HOG decoder: forward hooks on activations, backward hooks on gradients.

What it shows: the decoder shipped in models/evaluation/pretrained/hog.h5, loaded as a user would
(``load_decoder(feature="hog")``), reconstructs a bundled photo from its HOG features (31 x 8 x 8).
A forward hook on every layer, ``hook(module, args, output)``, keeps what the layer computed; a full
backward hook, ``hook(module, grad_input, grad_output)``, keeps the gradient of the reconstruction
loss with respect to the layer's output during one backward; the weights' gradients are in ``.grad``.

Look at: activations.png: per layer (before its leaky ReLU) its six most active channels (largest
mean square), blue negative, white 0, red positive (one scale per layer): the A branch (stride-2
convolutions down to 1x1, then up to 8x8) sees the whole photo at once, B on the 8x8 HOG grid, J joins them and upsamples to the 64x64 picture (last row).
gradients.png: per layer the norm of d loss / d output and of d loss / d weight (log scale).

    python3 docs/tour/05_inside_decoder.py [OUT]
"""
import os

import numpy as np

import nn.functional as F
from _tour import SAMPLE, nn, output_folder, picture
from models.data.encoders import scale_array, targets_to_float
from models.data.images import center_square, read_image
from models.display.figures import write_grid
from models.display.plot import plot_bars
from models.evaluation.inference import load_decoder

out = output_folder()
decoder = load_decoder(feature="hog")  # the shipped file, through the project's loader
model = decoder.model
print(f"decoder {decoder.path}: {sum(p.size for p in model.parameters()) / 1e6:.2f} M parameters, "
      f"{decoder.config['image_size']} px")
photo = center_square(read_image(os.path.join(SAMPLE, "skimage_chelsea.jpg")), decoder.encoder.image_size)[None]
features = decoder.encoder.features(photo)
x = nn.Tensor(features * scale_array(decoder.scale, features))  # scaled as in training
target = nn.Tensor(targets_to_float(decoder.encoder.targets(photo)))

layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
activations, output_grads, handles = {}, {}, []
for name, module in layers:
    def keep_output(module, args, output, name=name):
        activations[name] = output.numpy()[0]

    def keep_grad(module, grad_input, grad_output, name=name):
        output_grads[name] = float(np.linalg.norm(nn.to_numpy(grad_output[0])))
    handles += [module.register_forward_hook(keep_output), module.register_full_backward_hook(keep_grad)]

reconstruction = model(x)
loss = F.mse_loss(reconstruction, target)
loss.backward()
for handle in handles:
    handle.remove()  # the model is as it was
print(f"reconstruction loss (mean squared error, pixels on -0.5..0.5): {loss.item():.5f}")

print(f"{'layer':>9} {'output':>15} {'|dL/d output|':>14} {'|dL/d weight|':>14}")
weight_grads = [float(np.linalg.norm(m.weight.grad)) for _, m in layers]
for (name, _), wg in zip(layers, weight_grads):
    print(f"{name:>9} {str(activations[name].shape):>15} {output_grads[name]:14.3e} {wg:14.3e}")

rows, labels = [], []
for name, _ in layers:
    maps = activations[name]
    busiest = np.argsort(-(maps.reshape(len(maps), -1) ** 2).mean(1))[:6]
    rows.append([picture(maps[c], 128, limit=np.abs(maps).max()) for c in busiest])
    labels.append(f"{name} {maps.shape[0]}x{maps.shape[1]}x{maps.shape[2]}")
rgb = np.clip((reconstruction.numpy()[0].transpose(1, 2, 0) + 0.5) * 255, 0, 255)
rows.append([photo[0], rgb])
labels.append("photo | output")
write_grid(os.path.join(out, "activations.png"), rows, [f"rank {i + 1}" for i in range(6)], labels,
           title="Shipped HOG decoder: each layer's six most active channels (blue < 0 < red, one scale "
                 "per layer), recorded by forward hooks", tile=96)
plot_bars(os.path.join(out, "gradients.png"), [name for name, _ in layers],
          [("|d loss / d output| (full backward hook)", [output_grads[n] for n, _ in layers]),
           ("|d loss / d weight| (.grad)", weight_grads)],
          title="Shipped HOG decoder: gradient norms of the reconstruction loss per layer", xlabel="L2 norm")
print("wrote", os.path.join(out, "activations.png"), "and", os.path.join(out, "gradients.png"))
