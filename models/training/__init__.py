"""Training a decoder: the configuration, presets, run folder and loop (:mod:`.train`), checkpoints
(:mod:`.checkpoint`) and data-parallel process groups (:mod:`.distributed`)."""
