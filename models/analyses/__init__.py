"""The paper's analyses on trained decoders (:mod:`.analysis`: perturbation, dark knowledge, single
neurons, interpolation, random features), the optimisation baseline (:mod:`.optimize_inversion`),
layer-by-layer inspection and gradient checks (:mod:`.inspect_model`), and the report that gathers
them (:mod:`.report`)."""
