"""models: everything that learns to invert features, in rooms that import only the rooms before them.

    networks ← data ← display ← scoring ← training ← evaluation ← analyses

- :mod:`models.networks`: CaffeNet/AlexNet, the decoders and the table of the paper's representations;
- :mod:`models.data`: photos and crops, the encoders, the sharded feature cache and its extraction (Dask);
- :mod:`models.display`: labelled PNG grids, curves and the progress bar;
- :mod:`models.scoring`: the normalised reconstruction error and the baselines;
- :mod:`models.training`: the training run, its checkpoints and data-parallel groups;
- :mod:`models.evaluation`: trained decoders (checkpoints, decoder files, the shipped and released ones);
- :mod:`models.analyses`: the paper's analyses, the optimisation baseline, inspection and the report.

``tests/test_layout.py`` checks the order.
"""
