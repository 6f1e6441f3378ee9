"""The names a command's options offer, kept free of torch so that every ``--help`` (and
the option checks that run before any work) answers at once. Each belongs to the module
that acts on it, which imports it from here: :mod:`translate.core.runtime` (precisions),
:mod:`translate.networks.eval_mode` (test-time statistics),
:mod:`translate.inference.backends` (what runs a generator) and
:mod:`translate.models.model_file` (the directions a model file keys its generators by)."""

DIRECTIONS = ("AtoB", "BtoA")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Inference also runs int8: a quantized graph on onnxruntime or openvino.
INFERENCE_PRECISIONS = (*PRECISIONS, "int8")
NORM_STATS = ("running", "batch")
BACKENDS = ("torch", "onnxruntime", "openvino", "auto")
BACKEND_HELP = (
    "What runs the model: torch, onnxruntime (the ONNX export, made on first use and "
    "cached; CPU, fp32 or int8; needs the onnx extra), openvino (that export converted for "
    "OpenVINO's CPU plugin and cached; fp32, int8, or bf16 on a CPU with native bf16; needs "
    "the openvino extra) or auto (onnxruntime where installed for fp32 and int8 on the CPU, "
    "else torch)."
)
