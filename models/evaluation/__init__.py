"""Trained decoders in use: loading one from a checkpoint or decoder file and evaluating a folder
(:mod:`.inference`), decoder files and the shipped ones in ``pretrained/`` (:mod:`.pretrained`), and
the paper's released Caffe decoders (:mod:`.released`)."""
