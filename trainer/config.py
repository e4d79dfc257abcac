"""Recipes: YAML files in `recipes/` checked against a typed schema, with `key=value` overrides.

One schema (the dataclasses below) gives every key its type and default; a recipe YAML sets
values and the command line overrides them with dotted keys (`data.patches_per_image=64`).
OmegaConf in struct mode turns an unknown key or a wrongly typed value into an error; we
re-raise it as `RecipeError` listing what is valid, so a typo never trains silently.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.paths import resource

RECIPES_DIR = resource("recipes")


class RecipeError(ValueError):
    """A recipe name, key or value that does not exist or does not type-check."""


@dataclass
class ModelConfig:
    # "config": build from `config` below (random init, offline); otherwise a hub id, a local
    # folder, a `.gguf` file, or `package:DIST/FILE` for a file shipped inside an installed package.
    base: str = "config"
    # AutoConfig keyword arguments (model_type first) when base == "config".
    config: dict[str, Any] = field(default_factory=dict)
    # "base": the base model's tokenizer; "bytes": a byte-level tokenizer built locally; or a path.
    tokenizer: str = "base"
    # "auto": reuse numerals "0".."255" when all are single tokens, else add 256 tokens.
    pixel_vocab: str = "auto"
    dtype: str = "float32"
    revision: str = "main"
    attn_implementation: str = "sdpa"


@dataclass
class LoraSettings:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class PromptConfig:
    instruction: str = (
        "Lossless image compression. Predict the next value. Each value is one 8-bit subpixel; "
        "every {channels} values form one pixel ({channel_names}); pixels run left to right, "
        "rows top to bottom."
    )
    context_marker: str = "\nAbove:"
    patch_marker: str = "\nPatch:"
    fill: str = "?"  # stands for context pixels outside the image; one token, never coded
    patch_height: int = 16
    patch_width: int = 16
    context_rows: int = 2  # pixel rows above the patch given as in-context priors
    context_margin: int = 8  # extra context columns left and right of the patch


@dataclass
class DataConfig:
    # Image folders; "default" = $PIXLM_DATA/photos if present, else photos embedded in scikit-image.
    train_dirs: list[str] = field(default_factory=lambda: ["default"])
    val_images: int = 4  # whole images held out for validation (split by image, never by patch)
    max_images: int = 0  # 0 = all
    patches_per_image: int = 64
    val_patches_per_image: int = 16
    cache_dir: str = ""  # "" = $PIXLM_CACHE or ~/.cache/pixlm
    # A preprocessed patch file (trainer/train/patch_file.py) to read instead of the image folders.
    patch_file: str = ""


@dataclass
class RunConfig:
    """Keys every training script shares (train.py, distill.py, train_context.py)."""
    output_dir: str = "checkpoints/run"
    max_steps: int = 100
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16 (Accelerate refuses what the hardware lacks)
    seed: int = 0
    log_every: int = 10
    eval_every: int = 50
    save_every: int = 50
    keep_checkpoints: int = 2
    # "" or "false": fresh run; "true": latest state in output_dir; or a checkpoint folder.
    resume: str = ""
    slice_minutes: float = 0.0  # > 0: save the state and stop after this much wall time (resume=true goes on)


@dataclass
class TrainConfig(RunConfig):
    batch_size: int = 8
    grad_accum: int = 1
    num_workers: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    data: DataConfig = field(default_factory=DataConfig)


@dataclass
class DistillConfig(TrainConfig):
    """Knowledge distillation (distill.py): every TrainConfig key, plus the teacher and the KD loss.

    The student is `model` (built from `model.config`, base=config) with the teacher's tokenizer,
    pixel vocabulary and prompt, so both read the same batches; the recipe's `prompt` is replaced by
    the teacher's. loss = (1 - kd_ratio) * hard CE + kd_ratio * T^2 * KL(teacher_T || student_T),
    both in bits per subpixel, on the 256-way next-subpixel distributions at the patch positions.
    """
    teacher: str = ""  # a train.py final/ folder (PixelLM.save_pretrained)
    teacher_dtype: str = "float32"
    temperature: float = 2.0
    kd_ratio: float = 0.5


@dataclass
class ContextConfig:
    channels: int = 3
    rows_above: int = 3
    cols_side: int = 3
    cols_left: int = 3
    hidden: int = 256
    layers: int = 3
    head_hidden: int = 96
    mixtures: int = 6
    # Classical predictions (MED of LOCO-I/JPEG-LS, GAP of CALIC) as extra trunk inputs: non-linear
    # switches on edge direction that an MLP learns only slowly. Needs rows_above >= 2,
    # cols_side >= 1, cols_left >= 2.
    classical: bool = False

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """(dy, dx) of the context pixels; all strictly before (y, x) in raster order."""
        above = [(dy, dx) for dy in range(-self.rows_above, 0) for dx in range(-self.cols_side, self.cols_side + 1)]
        return above + [(0, dx) for dx in range(-self.cols_left, 0)]

    @property
    def lag(self) -> int:
        """Wavefront slope: pixel (y, x) is in wavefront lag*y + x (needs (y-1, x+cols_side) done)."""
        return self.cols_side + 1


@dataclass
class ContextTrainConfig(RunConfig):
    batch_crops: int = 32  # crops per step
    crop_size: int = 32  # every pixel of a crop is a training example
    val_crops_per_image: int = 4
    val_crop_size: int = 128
    threads: int = 0  # 0: torch's default (every core)
    # Distillation: a trained context model (final/ or bundle folder) with the same window teaches
    # the student on the 256-way distributions; loss = (1 - kd_ratio) * CE + kd_ratio * T^2 * KL.
    teacher: str = ""
    # Or an LM teacher's distributions cached in a folder of shards (trainer/train/teacher_cache.py):
    # the batches are then its patches (kd_ratio=0: the same patches on the data alone).
    teacher_cache: str = ""
    temperature: float = 1.0
    kd_ratio: float = 0.5
    model: ContextConfig = field(default_factory=ContextConfig)
    data: DataConfig = field(default_factory=DataConfig)


@dataclass(frozen=True)
class Adaptation:
    """Online per-image adaptation of a context bundle (trainer.codec.adapt), stored in its codec.json.
    The defaults are the shipped bundles' (v3 to v5), chosen on validation images (EXPERIMENTS.md)."""
    block: int = 512  # coded pixels between two adaptation steps
    lr: float = 2e-4  # Adam learning rate
    steps: int = 2  # optimizer steps per block
    # 1: a block's training runs on a second core while the next block is coded, and its weights
    # predict from the block after that (trainer.codec.adapt); 0: train, then code on.
    delay: int = 1
    # Train on every `every`-th pixel of a block (in coding order) only: the steps cost 1/every.
    every: int = 1

    def __post_init__(self):
        if (self.block < 1 or self.steps < 1 or not 0 < self.lr < 1
                or self.delay not in (0, 1) or not 1 <= self.every <= self.block):
            raise RecipeError(f"adaptation block={self.block} lr={self.lr} steps={self.steps} "
                             f"delay={self.delay} every={self.every}: block and steps must be >= 1, "
                             "lr in (0, 1), delay 0 or 1, every from 1 to block")

    @property
    def tag(self) -> str:
        """Part of the numeric mode: a stream records how its weights moved."""
        delay = f"-d{self.delay}" if self.delay else ""
        every = f"-e{self.every}" if self.every > 1 else ""
        return f"adam-b{self.block}-lr{self.lr:g}-s{self.steps}{delay}{every}"


def available_recipes(directory: Path = RECIPES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def valid_keys(schema: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts (free-form dicts such as model.config end the walk)."""
    keys = []
    for f in dataclasses.fields(schema):
        name = prefix + f.name
        if dataclasses.is_dataclass(f.type):
            keys += valid_keys(f.type, name + ".")
        else:
            keys.append(name)
    return keys


def load_recipe(name: str, overrides: list[str] = (), schema: type | None = None,
                directory: Path = RECIPES_DIR):
    """Recipe `name` (a file in recipes/ or a path to a YAML) with `key=value` overrides applied.

    schema None: DistillConfig for a recipe that names a `teacher`, else TrainConfig. The scripts
    pass theirs explicitly, so train.py refuses a distillation recipe instead of ignoring its teacher.
    """
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name}.yaml"
    if not path.is_file():
        raise RecipeError(f"unknown recipe '{name}'; available: {', '.join(available_recipes(directory))}")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise RecipeError(f"override '{item}' is not key=value")
    from omegaconf import OmegaConf  # the training extra; the codec reads only the dataclasses here
    from omegaconf.errors import OmegaConfBaseException

    try:
        recipe = OmegaConf.load(path)
        if schema is None:
            schema = DistillConfig if "teacher" in recipe else TrainConfig
        merged = OmegaConf.merge(OmegaConf.structured(schema), recipe, OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.to_object(merged)
        if getattr(cfg, "mixed_precision", None) in ("False", "false"):
            cfg.mixed_precision = "no"  # YAML reads a bare `no` as false
        check_values(cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        reason = str(err).splitlines()[0]
        distill_only = {f.name for f in dataclasses.fields(DistillConfig)} - {f.name for f in dataclasses.fields(TrainConfig)}
        if schema is TrainConfig and key in distill_only:
            reason += " (a distillation recipe: run it with distill.py)"
        raise RecipeError(
            f"recipe '{path.stem}': bad key or value '{key}': {reason}\n"
            f"valid keys: {', '.join(valid_keys(schema or TrainConfig))}") from None
    return cfg


# Recipe values that must be positive (>= 1 for counts, > 0 for rates) or non-negative; checked at
# load so a bad value fails before any data is read, not at step 50.
_POSITIVE = {"max_steps", "lr", "log_every", "eval_every", "save_every", "keep_checkpoints", "batch_size",
             "grad_accum", "batch_crops", "crop_size", "val_crops_per_image", "val_crop_size", "patches_per_image",
             "val_patches_per_image", "val_images", "patch_height", "patch_width", "channels", "hidden", "layers",
             "head_hidden", "mixtures", "temperature", "r", "alpha"}
_NON_NEGATIVE = {"warmup_steps", "weight_decay", "max_grad_norm", "seed", "num_workers", "threads", "max_images",
                 "slice_minutes", "context_rows", "context_margin", "rows_above", "cols_side", "cols_left"}
_UNIT = {"min_lr_ratio", "kd_ratio", "dropout"}  # 0..1


def check_values(cfg, prefix: str = "") -> None:
    """RecipeError naming the first value outside its range (see _POSITIVE, _NON_NEGATIVE, _UNIT)."""
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            check_values(value, key + ".")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        elif f.name in _POSITIVE and not value > 0:
            raise RecipeError(f"{key}={value}: must be positive")
        elif f.name in _NON_NEGATIVE and value < 0:
            raise RecipeError(f"{key}={value}: must be 0 or more")
        elif f.name in _UNIT and not 0 <= value <= 1:
            raise RecipeError(f"{key}={value}: must be between 0 and 1")
    if getattr(cfg, "mixed_precision", "no") not in ("no", "bf16", "fp16"):
        raise RecipeError(f"mixed_precision={cfg.mixed_precision}: must be no, bf16 or fp16")


def to_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def flat_dict(cfg) -> dict[str, Any]:
    """Flattened scalars for tensorboard hparams (it refuses nested dicts and lists)."""
    out = {}

    def walk(value, prefix):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = value if isinstance(value, (int, float, str, bool)) else str(value)

    from omegaconf import OmegaConf

    walk(OmegaConf.to_container(OmegaConf.structured(cfg)), "")
    return out
