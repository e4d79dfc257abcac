import pytest

from pathlib import Path

from trainer.config import RECIPES_DIR, DistillConfig, RecipeError, TrainConfig, available_recipes, flat_dict, load_recipe, valid_keys

REPO = Path(__file__).resolve().parent.parent


def recipe_script(name: str) -> str:
    """The script a recipe's header comment says runs it (`# Run:  accelerate launch SCRIPT recipe=NAME`)."""
    for line in (RECIPES_DIR / f"{name}.yaml").read_text().splitlines():
        if line.startswith("# Run:"):
            words = line.split()
            assert f"recipe={name}" in words, line
            return next(w for w in words if w.endswith(".py"))
    raise AssertionError(f"recipes/{name}.yaml has no '# Run:' line")


@pytest.mark.parametrize("name", available_recipes())
def test_every_shipped_recipe_loads_with_its_script_schema(name):
    from trainer.train.context import ContextTrainConfig

    schema = {"train.py": TrainConfig, "distill.py": DistillConfig, "train_context.py": ContextTrainConfig}[
        recipe_script(name)]
    assert (REPO / recipe_script(name)).is_file()
    cfg = load_recipe(name, schema=schema)
    assert type(cfg) is schema
    assert cfg.output_dir.startswith("checkpoints/") and cfg.max_steps > 0


def test_expected_recipes_ship():
    assert {"quickstart", "lora_smollm2", "lora_clic"} <= set(available_recipes())


def test_nested_overrides_are_applied_and_typed():
    cfg = load_recipe("quickstart", ["max_steps=7", "lr=0.5", "prompt.patch_width=4", "lora.enabled=true",
                                     "data.train_dirs=[/a,/b]", "model.config.hidden_size=32", "resume=true"])
    assert cfg.max_steps == 7 and cfg.lr == 0.5 and cfg.prompt.patch_width == 4 and cfg.lora.enabled
    assert cfg.data.train_dirs == ["/a", "/b"] and cfg.model.config["hidden_size"] == 32
    assert cfg.resume.lower() == "true"


@pytest.mark.parametrize("override,words", [
    ("max_step=3", "max_step"),
    ("prompt.patch_widht=4", "patch_widht"),
    ("max_steps=many", "max_steps"),
    ("lora.enabled=perhaps", "lora.enabled"),
    ("nonsense", "not key=value"),
])
def test_bad_overrides_are_errors_that_list_valid_keys(override, words):
    with pytest.raises(RecipeError, match=words) as err:
        load_recipe("quickstart", [override])
    if "=" in override:
        assert "valid keys:" in str(err.value) and "prompt.patch_width" in str(err.value)


def test_unknown_recipe_lists_available():
    with pytest.raises(RecipeError, match="quickstart"):
        load_recipe("quickstrat")


def test_unknown_key_inside_a_recipe_file_is_an_error(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("output_dir: checkpoints/x\nmax_steps: 3\nbatchsize: 4\n")
    with pytest.raises(RecipeError, match="batchsize"):
        load_recipe(str(path))


def test_valid_keys_and_flat_dict_agree():
    flat = flat_dict(load_recipe("quickstart"))
    assert all(k in flat or any(f.startswith(k + ".") for f in flat) for k in valid_keys())
    assert all(isinstance(v, (int, float, str, bool)) for v in flat.values())


@pytest.mark.parametrize("override,words", [("crop_size=0", "crop_size=0: must be positive"),
                                            ("crop_size=-5", "must be positive"),
                                            ("lr=0", "lr=0.0: must be positive"),
                                            ("min_lr_ratio=2", "between 0 and 1"),
                                            ("model.hidden=0", "model.hidden=0: must be positive"),
                                            ("warmup_steps=-1", "must be 0 or more"),
                                            ("mixed_precision=fp8", "must be no, bf16 or fp16")])
def test_recipe_values_are_checked_at_load(override, words):
    from trainer.train.context import ContextTrainConfig

    with pytest.raises(RecipeError, match=words.replace("(", r"\(")):
        load_recipe("context_student", [override], schema=ContextTrainConfig)
