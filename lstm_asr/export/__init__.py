"""Stage 6: export -- a trained model as files other runtimes load: self-contained TorchScript (whole-utterance,
streaming, int8; CTC and transducer) and ONNX."""
