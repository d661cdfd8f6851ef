"""The offline vision model: preprocessing, the ONNX classifier and the ImageNet vocabulary.

Imported only by the ``efficientnet`` provider (numpy and onnxruntime live in the model layer,
which only functions configured with that provider carry)."""
