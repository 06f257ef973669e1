"""06 - What HOG, SIFT and LBP keep of a photo, and what the shipped decoders make of it.

What it shows: for two bundled photos the shipped decoders never saw, each representation drawn so that a person can read it,
then the shipped decoder's reconstruction beside the two baselines every decoder is judged
against (models/scoring/baselines.py): the mean image (knows nothing of the photo) and a ridge
regression from the features to the pixels (the best linear decoder). Where the decoder file does
not carry its baselines, they are fitted here on the other bundled photos: with so few, the
ridge regression stays close to the mean image (fitted on thousands, it does better).

Look at: features.png, a row per photo and representation. HOG (gradient orientations per 8-px
cell, drawn as VLFeat's glyphs) keeps edges and their directions; SIFT (descriptors at keypoints
only, red where a 4-px cell holds one) keeps little where the photo is smooth; LBP (a texture
histogram per 16-px cell, its 3 main components drawn as colours) keeps textures, not shapes.
No representation keeps colour (all are computed on the grey photo): a decoder guesses it.

    python3 docs/tour/06_what_features_keep.py [OUT]
"""
import os

import numpy as np

from _tour import SAMPLE, output_folder
from minifeat import hog_render
from models.data.encoders import targets_to_float
from models.data.images import center_square, find_images, read_image, resize
from models.display.figures import write_grid
from models.evaluation.inference import load_decoder
from models.scoring.baselines import MeanImage, RidgeRegression, predictions_as_images
from models.scoring.metrics import normalized_error

out = output_folder()
# shown: two bundled photos that none of the shipped decoders (nor their baselines) was trained on
SHOWN = ("sklearn_china.jpg", "lomiri1604_friends_by_Aitzol_Berasategi.jpg")
files = find_images(SAMPLE)
shown = [f for f in files if os.path.basename(f) in SHOWN]
others = [f for f in files if os.path.basename(f) not in SHOWN]


def draw(feature, maps, photo):
    """One photo's feature map (C, H', W') as an image."""
    if feature == "hog":  # white glyphs on black, brighter where the gradient is stronger
        glyphs = hog_render(maps.transpose(1, 2, 0))
        return np.repeat(glyphs[..., None] * 255 / max(glyphs.max(), 1e-6), 3, 2)
    if feature == "sift":  # the grey photo, dimmed, with the cells holding a keypoint in red
        grey = np.repeat(resize(photo, *maps.shape[1:]).mean(2, keepdims=True), 3, 2) * 0.5
        strength = np.linalg.norm(maps[:128], axis=0)
        grey[strength > 0] = [255, 0, 0]
        return grey
    cells = maps.reshape(len(maps), -1).T  # LBP: (cells, 58); 3 principal components as RGB
    centred = cells - cells.mean(0)
    rgb = centred @ np.linalg.svd(centred, full_matrices=False)[2][:3].T
    rgb = (rgb - rgb.min(0)) / np.maximum(np.ptp(rgb, 0), 1e-9) * 255
    return np.kron(rgb.reshape(maps.shape[1], maps.shape[2], 3), np.ones((16, 16, 1)))  # sharp 16-px cells


rows, labels, notes = [], [], []
for feature in ("hog", "sift", "lbp"):
    decoder = load_decoder(feature=feature)
    size = decoder.encoder.image_size
    photos = np.stack([center_square(read_image(f), size) for f in shown])
    targets, reconstructions, features = decoder.reconstruct(photos, with_features=True)
    baselines = decoder.baselines()  # fitted on the decoder's training photos, where the file or run has them
    if baselines is None:
        fit_photos = np.stack([center_square(read_image(f), size) for f in others])
        fit_targets = targets_to_float(decoder.encoder.targets(fit_photos))
        fit_features = decoder.encoder.features(fit_photos)
        baselines = {m.name: m.fit(fit_features, fit_targets) for m in (MeanImage(), RidgeRegression())}
        notes.append(feature)
        print(f"{feature}: the decoder file carries no baselines: mean image and ridge regression fitted here on "
              f"the other {len(others)} bundled photos (too few for ridge to learn much: it stays near the mean)")
    shape = (3,) + targets.shape[1:3]
    predicted = {name: predictions_as_images(m, features, shape) for name, m in baselines.items()}
    errors = {"decoder": normalized_error(targets.astype(np.float32), reconstructions)}
    errors.update({name: normalized_error(targets.astype(np.float32), im) for name, im in predicted.items()})
    print(f"{feature} ({size} px, features {features.shape[1:]}): normalised error on these {len(photos)} photos "
          + ", ".join(f"{name} {e:.3f}" for name, e in errors.items()))
    for i, photo in enumerate(photos):
        rows.append([targets[i], draw(feature, features[i], photo), reconstructions[i],
                     *(images[i] for images in predicted.values())])
        labels.append(f"{feature} {size} px, {os.path.basename(shown[i])[:-4]}")

write_grid(os.path.join(out, "features.png"), rows,
           ["photo", "the features, drawn", "shipped decoder", "mean image", "ridge regression"], labels,
           title="What HOG, SIFT and LBP keep of a photo, decoded by the shipped decoders"
                 + (f"; baselines of {', '.join(notes)} fitted here on the {len(others)} other bundled photos "
                    "(the decoder files carry none)" if notes else ""), tile=160)
print("wrote", os.path.join(out, "features.png"))
