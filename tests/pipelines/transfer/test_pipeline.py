"""The transfer pipeline's shape, as built from the project's conf."""

from headstart.pipelines.transfer import create_pipeline


def inputs_of(pipeline, strategy: str) -> set[str]:
    return next(n for n in pipeline.nodes if n.name == f"{strategy}.train_target_models").inputs


def test_only_strategies_that_use_source_or_unlabelled_target_images_get_them():
    pipeline = create_pipeline()
    for strategy in ("coral", "dann"):
        assert {"source_train", "target_unlabelled"} <= set(inputs_of(pipeline, strategy))
    assert "source_train" in inputs_of(pipeline, "importance_weighting")
    tradaboost, rkd = set(inputs_of(pipeline, "tradaboost")), set(inputs_of(pipeline, "rkd"))
    assert "source_train" in tradaboost and "target_unlabelled" not in tradaboost
    assert "target_unlabelled" in rkd and "source_train" not in rkd  # the source model's relations, not its images
    for strategy in ("scratch", "finetune_full", "l2_sp", "lwf", "pixels_knn"):
        assert not {"source_train", "target_unlabelled"} & set(inputs_of(pipeline, strategy)), strategy
