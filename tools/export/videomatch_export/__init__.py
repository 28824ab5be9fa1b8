"""Export EfficientLoFTR checkpoints in Hugging Face's layout to ONNX for the VideoMatch server.

No dependency on ``transformers``: torch >= 1.13 and numpy. Modules:

* :mod:`.safetensors_io` -- the safetensors format, read and written with numpy.
* :mod:`.config` -- an EfficientLoFTR ``config.json``, checked, with every derived size.
* :mod:`.checkpoint` -- ``model.safetensors`` loaded strictly into :class:`.model.EfficientLoFTR`.
* :mod:`.model` -- the export-friendly module (HF's maths through fine-feature fusion, the original fine stage).
* :mod:`.fuse` -- RepVGG branches and batch norms folded into convolutions.
* :mod:`.onnx_export` -- tracing to ONNX (opset 17, dynamic batch), the fp16 variant, the server's manifest.
* :mod:`.selfcheck` -- inputs and PyTorch outputs the server checks the export against.
"""

__version__ = "1.0.0"
