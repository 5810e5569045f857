"""Names from a spec that end up in Python: labels (module attributes and state_dict keys),
and the block, network and parameter names the source generator writes as classes, functions
and arguments.

Labels are *rejected* when PyTorch would refuse them or they would replace something of the
module (E220): they are state_dict keys, so renaming them silently would break loading
weights. Class, function and argument names of a compiled file are *mangled* instead: they
only need to be valid, distinct and harmless Python.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

# Attributes of torch's module classes that a child module's name must not replace:
# nn.Module, nn.Sequential, nn.ModuleDict and nn.ModuleList (compiled files hold children in
# those), with archspec's ArchBlock. PyTorch's add_module refuses these names itself.
# tests/test_hostile.py checks that this covers dir() and vars() of those classes in the
# installed torch, private names included.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "append", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "clear", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extend",
    "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter",
    "get_submodule", "half", "hpu", "insert", "ipu", "items", "keys", "load_state_dict",
    "modules", "mps", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "pop", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty",
    "train", "training", "type", "update", "values", "xpu", "zero_grad",
    # private ones
    "_apply", "_backward_hooks", "_backward_pre_hooks", "_buffers", "_call_impl",
    "_compiled_call_impl", "_forward_hooks", "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_get_backward_hooks", "_get_backward_pre_hooks", "_get_item_by_idx", "_get_name",
    "_is_full_backward_hook", "_load_from_state_dict", "_load_state_dict_post_hooks",
    "_load_state_dict_pre_hooks", "_maybe_warn_non_full_backward_hook", "_modules",
    "_named_members", "_non_persistent_buffers_set", "_parameters", "_program", "_run",
    "_function", "_get_abs_string_index",
    "_register_load_state_dict_pre_hook", "_register_state_dict_hook",
    "_replicate_for_data_parallel", "_save_to_state_dict", "_slow_forward",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_version", "_wrapped_call_impl",
})


def label_problem(label: str) -> str | None:
    """Why PyTorch would refuse a label as a child module's name, or None."""
    if label.startswith("__") and label.endswith("__"):
        return "Python's special names (`__name__`) belong to the module object"
    if label in MODULE_ATTRIBUTES:
        return f"`{label}` is an attribute of PyTorch's modules, so a child cannot have it"
    return None


def is_attribute_name(name: str) -> bool:
    """Can generated code write `self.NAME` for this child? (Otherwise `add_module`.)"""
    return (name.isidentifier() and name.isascii() and not keyword.iskeyword(name)
            and not name.startswith("__"))


# ---------------------------------------------------------------- compiled files

# Module-level names every compiled file may use: imports, copied helpers, torch's globals.
GENERATED_GLOBALS = frozenset({"torch", "nn", "F", "math", "OrderedDict", "PaddedConv2d",
                               "DenseConcat", "LayerNorm2d", "StochasticDepth", "Permute",
                               "ToSequence", "SequenceRNN", "SequenceLSTM", "SequenceGRU",
                               "init_weights"})
PYTHON_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(
    dir(builtins))
_LOCAL_NAMES = frozenset({"self", "in_channels", "overrides", "x"})
_GENERATED_ARGUMENT = re.compile(r"arg\d+")
PARAM_PREFIX = "spec_"


def _clashes(name: str) -> bool:
    return (not name.isidentifier() or name in PYTHON_NAMES or name in GENERATED_GLOBALS
            or name in _LOCAL_NAMES or bool(_GENERATED_ARGUMENT.fullmatch(name))
            or name[:1].isupper()  # class names of the file are capitalised
            or name.startswith("_"))  # private names are mangled inside a class body


def python_parameter(name: str) -> str:
    """A spec parameter's name as a constructor argument: itself, or `spec_NAME` when it is a
    keyword, a builtin, a name the file uses, or could be one. One-to-one: a name that
    already starts with `spec_` is prefixed too."""
    if _clashes(name) or name.startswith(PARAM_PREFIX):
        return PARAM_PREFIX + name
    return name


CLASS_PREFIX = "Spec"  # for names with no letter to start a class name (`_9` -> `Spec9`)


def class_name(name: str, taken: set[str], counts: dict[str, int] | None = None) -> str:
    """A block's or network's name as a class of a compiled file, camel-cased
    (`dense_layer` -> `DenseLayer`). Always a valid identifier, in the NFKC form Python
    reads it in (so two results never become one name), and never a keyword, builtin, a name
    the file imports or defines (`nn`, `torch`, `F`, the helpers), or one of `taken`: clashes
    get a number (`Bottleneck2`). `taken` is not changed; the caller adds the result.
    `counts` (kept by ClassNames while `taken` only grows) says where each base's numbers
    go on, so that the n-th `Bottleneck` costs one try, not n."""
    base = _camel(unicodedata.normalize("NFKC", name))
    if not (base[:1].isidentifier() and base.isidentifier()) or base[:1] == "_":
        base = CLASS_PREFIX + "".join(c for c in base if ("a" + c).isidentifier())
    candidate, count = base, 2
    if counts is not None and base in counts:
        count = counts[base]
        candidate, count = f"{base}{count}", count + 1
    while not _free_class(candidate, taken):
        candidate, count = f"{base}{count}", count + 1
    if counts is not None:
        counts[base] = count
    return candidate


class ClassNames:
    """Class names by what each class comes from (a key): distinct, valid (class_name), and
    each found in constant time however many share a base."""

    def __init__(self, fixed: dict[tuple, str] | None = None) -> None:
        self.names: dict[tuple, str] = dict(fixed or {})
        self.taken = set(self.names.values())
        self.counts: dict[str, int] = {}

    def get(self, key: tuple, wanted: str) -> str:
        if key not in self.names:
            name = class_name(wanted, self.taken, self.counts)
            self.names[key] = name
            self.taken.add(name)
        return self.names[key]


# Network families as their papers and torchvision spell them, for the word of a name that
# is one of them (`resnet` -> `ResNet`, `wide_resnet` -> `WideResNet`).
SPELLINGS = {word.lower(): word for word in [
    "AlexNet", "ConvNeXt", "DenseNet", "EfficientNet", "GoogLeNet", "LeNet", "MNASNet",
    "MobileNet", "NiN", "RegNet", "ResNet", "ResNeXt", "ShuffleNet", "SqueezeNet", "UNet",
    "VGG", "ViT"]}


def _camel(name: str) -> str:
    """`dense_layer` -> `DenseLayer`, `resnet` -> `ResNet`: words split at underscores, each
    capitalised (or spelt as SPELLINGS has it), NFKC form again (upper-casing `ǆ` gives `Ǆ`,
    which Python reads as `DŽ`)."""
    words = [SPELLINGS.get(w.lower(), w[:1].upper() + w[1:]) for w in name.split("_") if w]
    return unicodedata.normalize("NFKC", "".join(words))


def _free_class(name: str, taken: set[str]) -> bool:
    return (name.isidentifier() and name not in PYTHON_NAMES and name not in GENERATED_GLOBALS
            and name not in taken and not keyword.iskeyword(name))


def python_function(name: str, taken: set[str]) -> str:
    """The builder function's name: the network's, or `build_NAME` when that clashes."""
    if _clashes(name) or name in taken:
        return "build_" + name
    return name


def docstring_text(text: str) -> str:
    """Text that is safe inside a triple-quoted docstring: quotes, backslashes and anything
    unprintable (newlines, escape sequences, lone surrogates) are escaped."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char.isprintable():
            out.append(char)
        else:
            out.append(ascii(char)[1:-1])
    return "".join(out)
