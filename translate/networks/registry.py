"""Build things by name: a registry maps names to constructors and checks their options.

A name is listed with its constructor (``register``) or with where the constructor lives,
``"module:qualname"`` (``declare``). A declared name's options and their defaults are read
from the constructor's signature in the module's source, without importing it, so that a
config naming networks is checked without torch; the module is imported when the name is
first built. A registry may have options common to all its names (the networks' weight
init), applied by its ``finish`` function to what the constructor built. The registries of
the package's own networks are declared at the end of this file: it is their one listing.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate.core.options import check_options

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
    """Names -> constructors. Unknown names and options raise ``ValueError`` listing valid ones.

    ``common`` options (name -> default) are every name's besides its constructor's own,
    except names declared with ``common=False`` (constructors that initialise themselves):
    ``build`` passes them to ``finish`` (``"module:qualname"``, imported when first used),
    called as ``finish(built, **common)`` after the constructor.
    """

    def __init__(self, kind: str, finish: str | None = None, **common: Any) -> None:
        self.kind = kind
        self._finish, self._common = finish, common
        # name -> (constructor or "module:qualname", the defaults this name sets, e.g.
        # resnet_6blocks: n_blocks=6)
        self._builders: dict[str, tuple[Callable[..., Any] | str, dict[str, Any]]] = {}
        self._own_init: set[str] = set()  # names declared with common=False

    def _add(
        self,
        builder: Callable[..., Any] | str,
        names: tuple[str, ...],
        defaults: dict,
        common: bool = True,
    ) -> None:
        known = {**parameters(builder), **(self._common if common else {})} if defaults else {}
        unknown = set(defaults) - set(known)
        if unknown:
            raise TypeError(f"{builder} has no option(s) {sorted(unknown)}")
        for name in names:
            self._builders[name] = (builder, defaults)
            if not common:
                self._own_init.add(name)

    def register(
        self, *names: str, common: bool = True, **defaults: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``builder`` under ``names``; ``defaults`` override its own defaults, so one
        constructor serves several named variants; ``common`` as for :meth:`declare`."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            self._add(builder, names, defaults, common)
            return builder

        return decorator

    def declare(self, target: str, *names: str, common: bool = True, **defaults: Any) -> None:
        """List ``names`` as built by ``target`` (``"module:qualname"``), imported when one
        of them is first built; ``defaults`` as for :meth:`register`; ``common=False``: the
        constructor takes none of the registry's common options (it initialises itself)."""
        self._add(target, names, defaults, common)

    def names(self) -> list[str]:
        return sorted(self._builders)

    def _parameters(self, name: str) -> dict[str, Any]:
        """The constructor's options, then the common ones (unless the name has its own)."""
        own = parameters(self._lookup(name)[0])
        common = {} if name in self._own_init else self._common
        if set(own) & set(common):
            raise TypeError(
                f"{self.kind} {name!r} takes {sorted(set(own) & set(common))} itself: declare "
                "it with common=False, or drop them from its constructor"
            )
        return {**own, **common}

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
        """Raise ``ValueError`` for an unknown name or an option
        :func:`~translate.core.options.check_options` refuses."""
        check_options(options, self._parameters(name), f"{self.kind} {name!r}", self.options(name))

    def build(self, name: str, **kwargs: Any) -> Any:
        self.check_options(name, kwargs)
        options = {**self._lookup(name)[1], **kwargs}
        common = {} if name in self._own_init else self._common
        built = self.get(name)(**{k: v for k, v in options.items() if k not in common})
        if common:
            self._apply_finish(built, options)
        return built

    def finish_like(self, module: nn.Module, name: str, options: dict[str, Any]) -> None:
        """Apply ``finish`` to ``module`` with the common options that ``build(name,
        **options)`` applies (the registry's, for a name that initialises itself): a module
        trained beside that network (CUT's patch sampler) starts as the network does."""
        self._apply_finish(module, {**self._lookup(name)[1], **options})

    def _apply_finish(self, built: Any, options: dict[str, Any]) -> None:
        module, _, qualname = self._finish.partition(":")  # type: ignore[union-attr]
        finish = getattr(importlib.import_module(module), qualname)
        finish(built, **{k: options.get(k, v) for k, v in self._common.items()})


def build_generator(
    name: str, in_channels: int = 3, out_channels: int = 3, **options: Any
) -> nn.Module:
    """A generator from the zoo, e.g. ``build_generator("unet_256", norm="instance")``; the
    names and their options: ``GENERATORS.names()``, ``GENERATORS.options(name)`` and
    docs/reference/model-zoo.md. The module's ``size_multiple`` is the multiple its input
    sides must be; ``G(x, layers=[...])`` returns feature maps (see
    :class:`~translate.networks.features.Generator`)."""
    return GENERATORS.build(name, in_channels=in_channels, out_channels=out_channels, **options)


def build_discriminator(name: str, in_channels: int, **options: Any) -> nn.Module:
    """A discriminator from the zoo, e.g. ``build_discriminator("patch", 6, n_layers=3)``;
    the names and their options as for :func:`build_generator` (``DISCRIMINATORS``)."""
    return DISCRIMINATORS.build(name, in_channels=in_channels, **options)


# Every network takes the reference's weight init (N(0, 0.02)); discriminators spectral norm
# on every convolution. Upstream-layout networks initialise as upstream and take neither.
GENERATORS = Registry(
    "generator", "translate.networks.layers:init_weights", init="normal", init_gain=0.02
)
GENERATORS.declare("translate.networks.generators:ResnetGenerator", "resnet_9blocks", "resnet")
GENERATORS.declare("translate.networks.generators:ResnetGenerator", "resnet_6blocks", n_blocks=6)
GENERATORS.declare(
    "translate.networks.generators:ResnetGenerator",
    "mobile_resnet_9blocks",
    "mobile_resnet",
    mobile=True,
)
GENERATORS.declare(
    "translate.networks.generators:ResnetGenerator",
    "mobile_resnet_6blocks",
    n_blocks=6,
    mobile=True,
)
GENERATORS.declare("translate.networks.generators:ShuffleResnetGenerator", "shuffle_resnet")
GENERATORS.declare("translate.networks.generators:UnetGenerator", "unet_256", "unet")
GENERATORS.declare("translate.networks.generators:UnetGenerator", "unet_128", num_downs=7)
GENERATORS.declare("translate.networks.upscalers:SRVGGNetCompact", "srvgg_compact", common=False)
GENERATORS.declare("translate.networks.upscalers:RRDBNet", "rrdbnet", common=False)
GENERATORS.declare("translate.networks.spade:SPADEGenerator", "spade", common=False)
GENERATORS.declare("translate.networks.oasis:OASISGenerator", "oasis", init="xavier")
GENERATORS.declare("translate.networks.pix2pixhd:Pix2PixHDGenerator", "pix2pixhd", common=False)

DISCRIMINATORS = Registry(
    "discriminator",
    "translate.networks.layers:init_weights",
    init="normal",
    init_gain=0.02,
    spectral_norm=False,
)
DISCRIMINATORS.declare("translate.networks.discriminators:PatchDiscriminator", "patch", "basic")
DISCRIMINATORS.declare("translate.networks.discriminators:PixelDiscriminator", "pixel")
DISCRIMINATORS.declare("translate.networks.discriminators:MultiscaleDiscriminator", "multiscale")
DISCRIMINATORS.declare(
    "translate.networks.discriminators:UNetDiscriminatorSN", "unet_sn", common=False
)
# OASIS's discriminator puts spectral norm on its own convolutions, as its paper.
DISCRIMINATORS.declare("translate.networks.oasis:OASISDiscriminator", "oasis", init="xavier")
