"""One config file per scale (atb.config): every section read by one class, unknown keys named with the file."""

import pytest
import yaml

from atb import config
from atb.develop import DevelopConfig
from atb.finetune import FinetuneConfig
from atb.latency import LatencySettings
from atb.ranking import RankingConfig
from atb.search import SearchConfig
from atb.train import TrainConfig
from conftest import write_scale_config

SCALES = ("smoke", "mini", "base", "paper")


def test_one_file_per_scale_and_nothing_else_in_configs():
    assert sorted(p.name for p in config.CONFIG_DIR.iterdir()) == sorted(f"{s}.yaml" for s in SCALES)
    for scale in SCALES:
        cfg = config.load(scale)
        assert cfg.scale == scale and set(cfg.sections) == set(config.SECTIONS)
        assert all(cfg.section(name) for name in config.SECTIONS), f"{scale}: every section is written"


@pytest.mark.parametrize("scale", SCALES)
def test_every_section_of_every_scale_loads_through_its_class(scale):
    from atb.reproduce import check_config

    loaded = check_config(scale)
    assert loaded["search"].scale == scale and loaded["develop"].scale == scale
    assert loaded["pretrain"]["kd"].objective == "kd" and loaded["pretrain"]["kd"].scale == scale


def test_unknown_section_and_missing_scale_are_named(tmp_path):
    with pytest.raises(config.ConfigError, match=r"x.yaml: unknown section\(s\) \['serach'\]"):
        config.load(write_scale_config(tmp_path / "x.yaml", serach={"population": 3}))
    no_name = tmp_path / "noname.yaml"
    no_name.write_text(yaml.safe_dump({"search": {}}))
    with pytest.raises(config.ConfigError, match="noname.yaml: key 'scale'"):
        config.load(no_name)
    with pytest.raises(config.ConfigError, match="huge.yaml: no such config file"):
        config.load("huge")
    broken = tmp_path / "broken.yaml"
    broken.write_text("scale: [unclosed\n")
    with pytest.raises(config.ConfigError, match="broken.yaml: not valid YAML"):
        config.load(broken)


@pytest.mark.parametrize(("section", "settings", "load", "where"), [
    ("pretrain", {"stepz": 3}, lambda p: TrainConfig.load(p, "mlm"), "pretrain"),
    ("pretrain", {"kd": {"teacherr": "x"}}, lambda p: TrainConfig.load(p, "kd"), "pretrain"),
    ("latency", {"mlp": {"epoch": 3}}, LatencySettings.load, r"latency\.mlp"),
    ("search", {"populaton": 3}, SearchConfig.load, "search"),
    ("ranking", {"archz": 3}, RankingConfig.load, "ranking"),
    ("develop", {"stepz": 3}, DevelopConfig.load, "develop"),
    ("finetune", {"glue": {"epochz": 1}}, lambda p: FinetuneConfig.load(p, "rte"), r"finetune\.glue"),
])
def test_a_misspelled_key_names_the_file_and_the_key(tmp_path, section, settings, load, where):
    path = write_scale_config(tmp_path / "user.yaml", **{section: settings})
    misspelled = next(iter(settings.values()))
    key = next(iter(misspelled)) if isinstance(misspelled, dict) else next(iter(settings))
    with pytest.raises(config.ConfigError, match=rf"user.yaml: {where}.*{key}"):
        load(path)


def test_nested_fitness_and_training_overrides_are_checked(tmp_path):
    from atb.reproduce import check_config

    for sections, key in [({"search": {"proxy": {"max_exampels": 3}}}, "max_exampels"),
                          ({"ranking": {"paper": {"budgetz": {}}}}, "budgetz"),
                          ({"develop": {"train": {"warmup_stepz": 1}}}, "warmup_stepz"),
                          ({"search": {"paper": {"budgets": {"sst2": {"epohcs": 1}}}}}, "epohcs")]:
        path = write_scale_config(tmp_path / f"{key}.yaml", **sections)
        with pytest.raises(ValueError, match=key):
            check_config(path)


def test_defaults_live_in_the_classes_and_a_file_lists_only_changes(tmp_path):
    empty = write_scale_config(tmp_path / "empty.yaml", scale="empty")
    assert SearchConfig.load(empty) == SearchConfig(scale="empty")
    assert DevelopConfig.load(empty) == DevelopConfig(scale="empty")
    assert LatencySettings.load(empty) == LatencySettings(scale="empty")
    assert FinetuneConfig.load(empty, "rte") == FinetuneConfig(scale="empty")
    assert TrainConfig.load(empty, "kd") == TrainConfig(scale="empty", objective="kd")


def test_a_scale_name_and_its_path_load_the_same():
    assert SearchConfig.load("mini") == SearchConfig.load(config.CONFIG_DIR / "mini.yaml")
    assert TrainConfig.load("mini", "kd") == TrainConfig.load(str(config.CONFIG_DIR / "mini.yaml"), "kd")


def test_overrides_replace_or_merge_and_are_named_as_overrides(tmp_path):
    """A loader's keyword arguments go over the file's section (config.load_section): each key replaced (develop's
    leave_out={} empties the file's), or with ``nested`` merged key by key (search's proxy keeps the file's other
    keys); an unknown override is named as one, an unknown key of the file as the file's."""
    path = write_scale_config(tmp_path / "user.yaml", develop={"seeds": 3, "leave_out": {"cola": "not learned"}},
                              search={"proxy": {"max_examples": 7, "max_seq_len": 64}})
    assert DevelopConfig.load(path, leave_out={}).leave_out == {} and DevelopConfig.load(path).seeds == 3
    proxy = SearchConfig.load(path, proxy={"max_examples": 9}).proxy
    assert proxy["max_examples"] == 9 and proxy["max_seq_len"] == 64
    with pytest.raises(config.ConfigError, match=r"user.yaml: develop overrides.*'seedz'"):
        DevelopConfig.load(path, seedz=1)
    bad = write_scale_config(tmp_path / "bad.yaml", develop={"seedz": 3})
    with pytest.raises(config.ConfigError, match=r"bad.yaml: develop: unknown key.*'seedz'"):
        DevelopConfig.load(bad, seeds=1)
