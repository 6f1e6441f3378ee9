"""Training configuration: nested dataclasses loaded from YAML, with ``--set a.b=value`` overrides.

This module is the schema: the sections, their types and the checks that need no trainer.
It imports no torch (nor do the trainers' specs, :mod:`translate.training.specs`), so a bad
config is refused at once.
:mod:`translate.training.configure` assembles a config for a ``model`` (a trainer in
``translate.training.models``), which supplies the defaults that differ from the dataclasses'
(pix2pix: U-Net 256, batch norm, vanilla GAN, lambda_l1 100; CycleGAN: ResNet 9 blocks,
instance norm, LSGAN, cycle 10, identity 0.5, image pool 50) and the type of the ``loss``
section, so a loss key of another model is an unknown key. A YAML file only lists what
differs. Unknown keys are errors naming the key and the closest valid ones.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from translate.core.choices import DIRECTIONS, PRECISIONS
from translate.core.process import available_cpus
from translate.data.images import FILE_CHANNELS
from translate.data.labels import Labels
from translate.data.transforms import Preprocess
from translate.networks.registry import DISCRIMINATORS, GENERATORS
from translate.training.objectives import OBJECTIVES, check_gp_weight, objective_options

LR_POLICIES = ("linear", "step", "plateau", "cosine")


@dataclass
class SingleImageConfig:
    """Training on random crops of one A image and one B image (the CUT authors' SinCUT)."""

    a: str = ""  # the A image's path (required)
    b: str = ""  # the B image's path (required)
    # Resize factor of each crop before it is cut at data.preprocess.crop_size, drawn
    # uniformly per crop: 1 keeps the image's pixels, 0.5 covers twice the side (zoomed out).
    # The reference's --random_scale_max 3 is [1/3, 1].
    scale: list[float] = field(default_factory=lambda: [1 / 3, 1.0])
    steps_per_epoch: int = 100  # batches of crops that make an epoch (the schedule's unit)

    def __post_init__(self) -> None:
        for key in ("a", "b"):
            if not getattr(self, key):
                raise ValueError(f"needs '{key}', the path of the {key.upper()} image")
        scale = self.scale
        if len(scale) != 2 or not all(isinstance(s, (int, float)) for s in scale):
            raise ValueError(f"scale: expected [min, max], got {scale!r}")
        self.scale = [float(s) for s in scale]
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale: needs 0 < min <= max, got {scale!r}")
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch: must be at least 1, got {self.steps_per_epoch}")


@dataclass
class DataConfig:
    """Where the training images are and how they are read (``data:``)."""

    root: str = "datasets/facades"  # the dataset folder (layouts: docs/datasets.md)
    direction: str = "AtoB"  # pix2pix: which half of a pair is the input
    # pix2pix input / CycleGAN domain A, and the target / domain B: 1 gray, 3 RGB, 2 and 4
    # with the files' alpha as a channel
    input_channels: int = 3
    output_channels: int = 3  # as input_channels, for the target / domain B
    preprocess: Preprocess = field(default_factory=Preprocess)
    max_dataset_size: int | None = None  # read at most this many training images
    # auto: val, else test, else holdout (every 10th training file, kept out of training);
    # train: validate on the training images; any other name must be a split present
    val_split: str = "auto"
    val_size: int = 200  # validation images scored (the first of them are the sample grid)
    serial: bool = False  # CycleGAN: pair A[i] with B[i] instead of a random B
    # loader processes; more than the CPUs only adds contention (and a torch warning)
    num_workers: int = field(default_factory=lambda: min(4, available_cpus()))
    # instead of root: crops of one A and one B image, for trainers of unpaired data
    single_image: SingleImageConfig | None = None
    # model sr: synthesise the LR inputs from HR images alone (bicubic, realesrgan; see
    # translate.data.degradations), with these options; unset: paired LR/HR folders
    degradation: str | None = None
    degradation_options: dict[str, Any] = field(default_factory=dict)
    # label maps in A/ (docs/label-maps.md): the number of classes, ids 0 to label_nc - 1;
    # the trainers of label maps need it, the others refuse it
    label_nc: int | None = None
    labels: Labels = field(default_factory=Labels)  # ignore id, class names and colours
    instances: bool = False  # label maps: add the boundaries of instance maps in inst/
    # label maps: Adam steps of the segmenter whose mIoU on the outputs validation reports
    # (trained once on the training images, cached beside them: translate.models.segmenter);
    # 0: no mIoU
    segmenter_steps: int = 400

    def source(self) -> str:
        """What the run trains on, in words (the run summary's ``dataset``)."""
        s = self.single_image
        return str(self.root) if s is None else f"single images A {s.a}, B {s.b}"


@dataclass
class NetworkConfig:
    """The generator (``generator:``): a zoo name and its builder's options."""

    name: str = "unet_256"  # a generator of the zoo (the trainer's default replaces it)
    options: dict[str, Any] = field(default_factory=dict)  # passed to the zoo builder


@dataclass
class DiscriminatorConfig:
    """The discriminator (``discriminator:``) and what it is shown."""

    name: str = "patch"  # a discriminator of the zoo: patch, pixel, multiscale
    options: dict[str, Any] = field(default_factory=dict)  # passed to the zoo builder
    pool_size: int = 0  # image pool of generated images for D updates (CycleGAN: 50)
    diff_augment: str = ""  # DiffAugment policy before D, e.g. "translation,cutout,color"


@dataclass
class LossConfig:
    """The GAN terms every trainer has; each trainer's ``Loss`` subclasses this."""

    gan_mode: str = "vanilla"  # a GAN objective: vanilla, lsgan, hinge, wgangp
    gp_weight: float = 10.0  # wgangp
    feature_matching: float = 0.0  # weight; needs a multiscale discriminator
    non_negative: typing.ClassVar[tuple[str, ...]] = ()  # a subclass's keys refused below 0

    def __post_init__(self) -> None:
        for key in self.non_negative:
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be 0 or more, got {getattr(self, key)}")


@dataclass
class OptimConfig:
    """Adam, one per network (``optim:``)."""

    lr_g: float = 2e-4  # generators' learning rate
    lr_d: float = 2e-4  # discriminators' learning rate
    beta1: float = 0.5  # Adam's first-moment decay
    beta2: float = 0.999  # Adam's second-moment decay
    d_steps: int = 1  # discriminator updates per generator update (each on its own batch)
    grad_clip: float | None = None  # max gradient norm, per network


@dataclass
class ScheduleConfig:
    """The learning-rate schedule, stepped per epoch (``schedule:``)."""

    policy: str = "linear"  # linear, step, plateau (the epoch's mean G loss), cosine
    epochs: int = 100  # at the initial learning rate (linear), or before decay starts
    decay_epochs: int = 100  # linear decay to zero; total epochs = epochs + decay_epochs
    step_size: int = 50  # step: multiply by gamma every step_size epochs
    gamma: float = 0.1  # step and plateau factor
    patience: int = 5  # plateau: epochs without improvement


@dataclass
class TrainConfig:
    """How the steps run (``train:``)."""

    seed: int = 0  # seeds the weights, the data order and every augmentation
    batch_size: int = 1  # images per step (per rank under torchrun)
    # config.yaml records what these three resolved to, so a resumed run continues as it ran
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    # auto: bf16 (or fp16) on CUDA; on the CPU bf16 where it is native, else fp32
    precision: str = "auto"
    threads: int | None = None  # torch's CPU threads; unset: torch's default (the CPUs)
    channels_last: bool = True  # on CUDA
    compile: bool = False  # torch.compile every network
    max_steps: int | None = None  # stop early (quick runs, tests)
    # stop after the step during which the run's wall time passes this many minutes (the
    # time of the attempts a resume continues counts); the run ends as at max_steps
    max_minutes: float | None = None
    ema: float = 0.0  # decay of the generators' weight average (e.g. 0.999); 0: off
    # seconds a rank waits for the others (joining, each collective) before the run fails;
    # torchrun's elastic restart then takes over
    dist_timeout: float = 1800.0
    # all-reduce each gradient bucket as soon as backward has filled it (false: one flat
    # all-reduce after backward, the earlier path)
    overlap_grad_reduce: bool = True


@dataclass
class LogConfig:
    """What the run writes and how often (``log:``)."""

    every: int = 100  # steps between loss logs
    eval_every: int = 1000  # steps between samples, val metrics and monitoring
    checkpoint_every: int = 2000  # steps between training-state checkpoints
    keep: int = 3  # checkpoints kept
    snapshot_every: int = 0  # steps between generators/generator_<step>.safetensors (0: none)
    tensorboard: bool = True  # also log to RUN_DIR/tensorboard when tensorboard is installed


@dataclass
class Config:
    """A training run's whole configuration: one section per field."""

    model: str = "pix2pix"  # the trainer (translate.training.specs.TRAINERS)
    data: DataConfig = field(default_factory=DataConfig)
    generator: NetworkConfig = field(default_factory=NetworkConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)  # the model's Loss dataclass
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as nested plain dicts, as ``config.yaml`` stores it."""
        return dataclasses.asdict(self)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``, section by section (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _unknown_key(path: str, key: str, valid: list[str]) -> ValueError:
    where = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return ValueError(f"unknown config key {where!r}{hint} (valid: {', '.join(sorted(valid))})")


def _check_value(path: str, value: Any, hint: Any) -> Any:
    """Light type checking of YAML scalars against a field's annotation."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is float and not isinstance(value, bool):
        # YAML 1.1 reads 2e-4 (no dot) as a string; accept it as the number it means.
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    plain = typing.get_origin(hint) or hint
    ok = isinstance(value, plain) and not (plain is int and isinstance(value, bool))
    if not ok:
        name = getattr(hint, "__name__", str(hint))
        raise ValueError(f"config key {path!r}: expected {name}, got {value!r}")
    return value


def _section_class(hint: Any) -> type | None:
    """The dataclass a field holds (an optional section such as ``data.single_image``
    included), else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), None)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _build(cls: type, data: Any, path: str, types: dict[str, type] | None = None) -> Any:
    """``cls`` from a mapping; ``types`` replaces the annotated type of some sections."""
    if not isinstance(data, dict):
        raise ValueError(f"config key {path or '<top>'!r}: expected a mapping, got {data!r}")
    hints = {**typing.get_type_hints(cls), **(types or {})}
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(path, str(key), names)
        sub = f"{path}.{key}" if path else key
        section = _section_class(hints[key])
        if section is not None and value is not None:
            kwargs[key] = _build(section, value, sub)
        else:
            kwargs[key] = _check_value(sub, value, hints[key])
    try:
        return cls(**kwargs)
    except ValueError as exc:  # e.g. Preprocess's own checks
        raise ValueError(f"config key {path!r}: {exc}") from exc


def _check_choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"config key {key!r}: {value!r} is not one of {', '.join(map(str, choices))}"
        )


def _check_options(key: str, registry: Any, name: str, options: dict[str, Any]) -> None:
    """The network's name and options, by the registry's rules, named by their config key."""
    _check_choice(f"{key}.name", name, registry.names())
    try:
        registry.check_options(name, options)
    except ValueError as exc:  # "option: reason"
        option, _, reason = str(exc).partition(": ")
        raise ValueError(f"config key '{key}.options.{option}': {reason}") from None


def build_config(tree: dict[str, Any], loss: type) -> Config:
    """A :class:`Config` from a merged tree, its ``loss`` section built as ``loss``; unknown
    keys and wrong types are errors naming the key."""
    return _build(Config, tree, "", {"loss": loss})


def check_values(config: Config) -> None:
    """The checks that need neither data nor the trainer: names, choices and ranges."""
    _check_choice("data.direction", config.data.direction, DIRECTIONS)
    for key in ("input_channels", "output_channels"):  # what image files can supply
        _check_choice(f"data.{key}", getattr(config.data, key), FILE_CHANNELS)  # type: ignore[arg-type]
    _check_options("generator", GENERATORS, config.generator.name, config.generator.options)
    d = config.discriminator
    _check_options("discriminator", DISCRIMINATORS, d.name, d.options)
    _check_choice("loss.gan_mode", config.loss.gan_mode, OBJECTIVES.names())
    if "gp_weight" in objective_options(config.loss):  # a key only its objective reads
        try:
            check_gp_weight(config.loss.gp_weight)
        except ValueError as exc:  # "gp_weight: reason"
            option, _, reason = str(exc).partition(": ")
            raise ValueError(f"config key 'loss.{option}': {reason}") from None
    _check_choice("schedule.policy", config.schedule.policy, LR_POLICIES)
    _check_choice("train.precision", config.train.precision, PRECISIONS)
    positive = {
        "data.val_size": config.data.val_size,
        "optim.d_steps": config.optim.d_steps,
        "train.batch_size": config.train.batch_size,
        "log.every": config.log.every,
        "log.eval_every": config.log.eval_every,
        "log.checkpoint_every": config.log.checkpoint_every,
        "log.keep": config.log.keep,
        "schedule.step_size": config.schedule.step_size,
    }
    for key in ("max_steps", "threads"):
        if getattr(config.train, key) is not None:
            positive[f"train.{key}"] = getattr(config.train, key)
    for key, value in positive.items():
        if value < 1:
            raise ValueError(f"config key {key!r}: must be at least 1, got {value}")
    if config.log.snapshot_every < 0:
        raise ValueError(
            f"config key 'log.snapshot_every': must be 0 (off) or more, got "
            f"{config.log.snapshot_every}"
        )
    if config.schedule.epochs + config.schedule.decay_epochs < 1:
        raise ValueError("config keys 'schedule.epochs' + 'schedule.decay_epochs' must be >= 1")
    minutes = config.train.max_minutes
    if minutes is not None and not minutes > 0:
        raise ValueError(
            f"config key 'train.max_minutes': must be a positive number of minutes, got {minutes}"
        )
    if not config.train.dist_timeout > 0:
        raise ValueError(
            "config key 'train.dist_timeout': must be a positive number of seconds, got "
            f"{config.train.dist_timeout}"
        )
    if not 0 <= config.train.ema < 1:
        raise ValueError(f"config key 'train.ema': must be in [0, 1), got {config.train.ema}")
    _check_labels(config.data)
    if config.loss.feature_matching > 0 and d.name != "multiscale":
        raise ValueError(
            "config key 'loss.feature_matching': needs discriminator.name 'multiscale' "
            f"(got {d.name!r})"
        )


def label_count(config: Config) -> int:
    """``data.label_nc`` of a config whose trainer reads label maps; ``ValueError`` naming
    the key where it is not set."""
    d = config.data
    if d.label_nc is None:
        raise ValueError(
            f"config key 'data.label_nc': model {config.model!r} trains on label maps; set it "
            f"to their number of classes (translate data check {d.root} --label-nc N "
            "reports the ids present)"
        )
    return d.label_nc


def _check_labels(data: DataConfig) -> None:
    """A label section needs the number of classes, and names or colours one per class."""
    if data.segmenter_steps < 0:
        raise ValueError(
            f"config key 'data.segmenter_steps': a number of steps, 0 for no mIoU, got "
            f"{data.segmenter_steps}"
        )
    if data.label_nc is not None:
        data.labels.check_count(data.label_nc)
        return
    if data.labels != Labels() or data.instances:
        key = "data.labels" if data.labels != Labels() else "data.instances"
        raise ValueError(
            f"config key {key!r}: describes label maps, but data.label_nc (the number of "
            "classes) is not set; set it"
        )


class OverrideError(ValueError):
    """A config error that a ``--set`` assignment brings; the message starts with it."""


def set_key(tree: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to a config dict."""
    if "=" not in assignment:
        raise ValueError("expected key=value, e.g. optim.lr_g=1e-4")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"{key!r} is not a section")
    node[keys[-1]] = yaml.safe_load(raw)


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML config file's sections, unchecked; errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config must be a mapping of sections")
    return data


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
