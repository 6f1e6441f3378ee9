"""Build things by name: a registry maps names to constructors and checks their options.

A name is listed with its constructor (``register``) or with where the constructor lives,
``"module:qualname"`` (``declare``). A declared name's options and their defaults are read
from the constructor's signature in the module's source, without importing it, so that a
config naming networks is checked without torch; the module is imported when the name is
first built. The registries of the package's own networks are declared at the end of this
file: it is their one listing.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

EMPTY = inspect.Parameter.empty
NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the package


def _callable_parameters(builder: Callable[..., Any]) -> dict[str, Any]:
    """Each named parameter of ``builder`` (a class: of its constructor) -> its default."""
    params = inspect.signature(builder).parameters.values()
    return {p.name: p.default for p in params if p.kind in NAMED}


def _function_parameters(node: ast.FunctionDef, skip: int) -> dict[str, Any]:
    args = node.args
    positional = [*args.posonlyargs, *args.args][skip:]
    defaults: list[Any] = [EMPTY] * (len(positional) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    found = {a.arg: d for a, d in zip(positional, defaults, strict=True)}
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        found[arg.arg] = EMPTY if default is None else ast.literal_eval(default)
    return found


@cache
def _module_tree(module: str) -> dict[str, ast.AST]:
    path = SOURCE_ROOT.joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def _source_parameters(module: str, name: str) -> dict[str, Any]:
    """What :func:`_callable_parameters` gives for ``module.name``, read from its source: a
    function's parameters, or the ``__init__`` of a class or of its first base in the same
    module that has one (none found: a base outside the module that takes no options).
    Defaults must be literals."""
    node = _module_tree(module).get(name)
    if isinstance(node, ast.FunctionDef):
        return _function_parameters(node, 0)
    if not isinstance(node, ast.ClassDef):
        raise TypeError(f"{module} defines no function or class {name!r}")
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef) and statement.name == "__init__":
            return _function_parameters(statement, 1)
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in _module_tree(module):
            return _source_parameters(module, base.id)
    return {}


def parameters(builder: Callable[..., Any] | str) -> dict[str, Any]:
    """Each named option of a constructor, or of a declared one (``"module:qualname"``,
    read from its source) -> its default (``EMPTY`` where it has none)."""
    if isinstance(builder, str):
        module, _, name = builder.partition(":")
        return _source_parameters(module, name)
    return _callable_parameters(builder)


class Registry:
    """Names -> constructors. Unknown names and options raise ``ValueError`` listing valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        # name -> (constructor or "module:qualname", the defaults this name sets, e.g.
        # resnet_6blocks: n_blocks=6)
        self._builders: dict[str, tuple[Callable[..., Any] | str, dict[str, Any]]] = {}

    def _add(
        self, builder: Callable[..., Any] | str, names: tuple[str, ...], defaults: dict
    ) -> None:
        unknown = set(defaults) - set(parameters(builder)) if defaults else set()
        if unknown:
            raise TypeError(f"{builder} has no option(s) {sorted(unknown)}")
        for name in names:
            self._builders[name] = (builder, defaults)

    def register(
        self, *names: str, **defaults: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``builder`` under ``names``; ``defaults`` override its own defaults, so one
        constructor serves several named variants."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            self._add(builder, names, defaults)
            return builder

        return decorator

    def declare(self, target: str, *names: str, **defaults: Any) -> None:
        """List ``names`` as built by ``target`` (``"module:qualname"``), imported when one
        of them is first built; ``defaults`` as for :meth:`register`."""
        self._add(target, names, defaults)

    def names(self) -> list[str]:
        return sorted(self._builders)

    def _parameters(self, name: str) -> dict[str, Any]:
        return parameters(self._lookup(name)[0])

    def options(self, name: str) -> list[str]:
        """The keyword options the named network accepts (besides its channel counts)."""
        return [p for p in self._parameters(name) if p not in ("in_channels", "out_channels")]

    def get(self, name: str) -> Callable[..., Any]:
        """The constructor registered under ``name`` (for trainers: the class itself),
        imported here where it was declared."""
        builder, _ = self._lookup(name)
        if isinstance(builder, str):
            module, _, qualname = builder.partition(":")
            return getattr(importlib.import_module(module), qualname)
        return builder

    def defaults(self, name: str) -> dict[str, Any]:
        """Each option's default for the named network (the variant's, else the builder's)."""
        own = {k: v for k, v in self._parameters(name).items() if v is not EMPTY}
        return {**own, **self._lookup(name)[1]}

    def _lookup(self, name: str) -> tuple[Callable[..., Any] | str, dict[str, Any]]:
        try:
            return self._builders[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        """Raise ``ValueError`` for an unknown name or option, or a value whose type differs
        from the option's default (``ngf: "24"``); the message starts with the option."""
        valid = self._parameters(name)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {self.kind} {name!r}; "
                f"valid options: {', '.join(self.options(name))}"
            )
        for key, value in options.items():
            default = valid[key]
            if default is EMPTY or default is None:
                continue
            # bool is an int subclass, and an int may stand for a float, not the reverse.
            expected = (float, int) if type(default) is float else type(default)
            if isinstance(value, bool) is not isinstance(default, bool) or not isinstance(
                value, expected
            ):
                raise ValueError(
                    f"{key}: expected {type(default).__name__} (like the default "
                    f"{default!r}), got {value!r}"
                )

    def build(self, name: str, **kwargs: Any) -> Any:
        self.check_options(name, kwargs)
        builder = self.get(name)
        return builder(**{**self._lookup(name)[1], **kwargs})


def build_generator(
    name: str, in_channels: int = 3, out_channels: int = 3, **options: Any
) -> nn.Module:
    """A generator from the zoo, e.g. ``build_generator("unet_256", norm="instance")``.

    Names: ``resnet_9blocks``/``resnet_6blocks`` and ``mobile_resnet_9blocks``/
    ``mobile_resnet_6blocks`` (``n_blocks``, ``widths``, ``mobile``), ``unet_256``/``unet_128``
    (``num_downs``). Options: ``ngf``, ``norm``, ``norm_affine``, ``dropout``, ``init``,
    ``init_gain``. Super-resolution (``scale`` x the input, pixels in [-1, 1] like the rest):
    ``rrdbnet`` (``num_feat``, ``num_block``, ``num_grow_ch``) and ``srvgg_compact``
    (``num_feat``, ``num_conv``, ``act``). Label maps to images: ``spade`` (``in_channels``
    one-hot classes; ``num_upsampling``, ``hidden``, ``norm``, ``spectral_norm``) and
    ``pix2pixhd``, the coarse-to-fine generator (``n_local_enhancers``,
    ``n_downsample_global``, ``n_blocks_global``, ``n_blocks_local``, ``input_kind``). The
    module's ``size_multiple`` is the multiple its input sides must be; ``G(x, layers=[...])``
    returns feature maps (see :class:`~translate.networks.features.Generator`).
    """
    return GENERATORS.build(name, in_channels=in_channels, out_channels=out_channels, **options)


def build_discriminator(name: str, in_channels: int, **options: Any) -> nn.Module:
    """A discriminator from the zoo: ``patch`` (alias ``basic``), ``pixel`` or ``multiscale``
    (options ``ndf``, ``n_layers``, ``norm``, ``num_scales``, ``spectral_norm``, ``init``,
    ``init_gain``), or ``unet_sn``, Real-ESRGAN's (``num_feat``, ``skip_connection``).
    """
    return DISCRIMINATORS.build(name, in_channels=in_channels, **options)


GENERATORS = Registry("generator")
GENERATORS.declare("translate.networks.generators:resnet", "resnet_9blocks", "resnet")
GENERATORS.declare("translate.networks.generators:resnet", "resnet_6blocks", n_blocks=6)
GENERATORS.declare(
    "translate.networks.generators:resnet", "mobile_resnet_9blocks", "mobile_resnet", mobile=True
)
GENERATORS.declare(
    "translate.networks.generators:resnet", "mobile_resnet_6blocks", n_blocks=6, mobile=True
)
GENERATORS.declare("translate.networks.generators:unet", "unet_256", "unet")
GENERATORS.declare("translate.networks.generators:unet", "unet_128", num_downs=7)
GENERATORS.declare("translate.networks.upscalers:SRVGGNetCompact", "srvgg_compact")
GENERATORS.declare("translate.networks.upscalers:RRDBNet", "rrdbnet")
GENERATORS.declare("translate.networks.spade:spade", "spade")
GENERATORS.declare("translate.networks.pix2pixhd:Pix2PixHDGenerator", "pix2pixhd")

DISCRIMINATORS = Registry("discriminator")
DISCRIMINATORS.declare("translate.networks.discriminators:patch", "patch", "basic")
DISCRIMINATORS.declare("translate.networks.discriminators:pixel", "pixel")
DISCRIMINATORS.declare("translate.networks.discriminators:multiscale", "multiscale")
DISCRIMINATORS.declare("translate.networks.discriminators:UNetDiscriminatorSN", "unet_sn")
