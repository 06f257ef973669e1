"""The networks: CaffeNet and torchvision AlexNet (:mod:`.alexnet`, with ImageNet's class names in
:mod:`.imagenet_classes`), and the decoders with the table of the paper's eleven representations
(:mod:`.decoders`). Imports nothing else of models."""
