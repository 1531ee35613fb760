"""The GenFT method (``docs/method.md``; arXiv 2506.11042, §3), its baselines and the method registry.

``generate_delta`` is the pure generator; ``attach_genft`` adapts a timm ViT or a transformers text
encoder in place; ``attach_method`` gives GenFT, LoRA (on the same q/v targets), linear probing and
full fine-tuning one interface (:class:`MethodAdapter`) for fair comparisons.
"""

from genft_search.method._base import MethodAdapter
from genft_search.method._baselines import FullFineTuneAdapter, LinearProbeAdapter
from genft_search.method._counts import genft_num_parameters, lora_num_parameters
from genft_search.method._generator import GenFTGenerator
from genft_search.method._genft import GenFTAdapter, attach_genft, load_genft
from genft_search.method._lora import LoraAdapter, LoraQVLinear
from genft_search.method._registry import attach_method, check_method_config, list_methods, register_method
from genft_search.method._targets import detect_family
from genft_search.method.config import GenFTConfig
from genft_search.method.functional import generate_delta

__all__ = [
    "FullFineTuneAdapter",
    "GenFTAdapter",
    "GenFTConfig",
    "GenFTGenerator",
    "LinearProbeAdapter",
    "LoraAdapter",
    "LoraQVLinear",
    "MethodAdapter",
    "attach_genft",
    "attach_method",
    "check_method_config",
    "detect_family",
    "generate_delta",
    "genft_num_parameters",
    "list_methods",
    "load_genft",
    "lora_num_parameters",
    "register_method",
]
